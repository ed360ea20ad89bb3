/// The training steps the bench compares: each real workload written twice, as a Ninjax model in
/// the seed's pattern (purified once, called in the obvious loop) and as a hand-written
/// TorchSharp twin (nn modules, torch.optim, intermediates freed by a dispose scope) that computes
/// the same things from the same starting parameters. So the ratio of the two is what Ninjax
/// costs or saves: purification, the state, its optimizer step and the gradient norm it reports.
/// Ninjax runs twice: donating its state to each next step (the optimizer then updates in place,
/// as torch.optim does) and without donation (every step makes new parameters and moments).
module Ninjax.Bench.Workloads

open System
open TorchSharp
open Ninjax

/// Three ways to take the same training step; each returns the step's loss.
type Workload =
    {
        /// The name the bench prints (<c>overhead ratio NAME: X.XX</c>).
        Name: string
        /// The hand-written TorchSharp twin: the baseline.
        TorchSharp: unit -> float32
        /// Ninjax, donating its state to the next step.
        NinjaxDonated: unit -> float32
        /// Ninjax, the plain loop without donation.
        Ninjax: unit -> float32
    }

/// The obvious loop: a purified step called on the state the previous call returned. Each step
/// reads the loss and the correct count, as the TorchSharp twin does.
type private Loop(step: State -> torch.Tensor * torch.Tensor -> State * Digits.Models.StepMetrics, start: State) =
    let mutable state = start

    member _.Step(x: torch.Tensor, y: torch.Tensor) =
        let next, metrics = step state (x, y)
        state <- next
        metrics.Correct.item<int64> () |> ignore
        metrics.Loss.item<float32> ()

/// The C# surface's Nj, which the C# example purifies with (in expressions `Ninjax.CSharp` would
/// name the union case Language.CSharp).
type private CSharpNj = global.Ninjax.CSharp.Nj

/// The GAN's obvious loop: the purified ConditionalGan.Train called on the state the previous call
/// returned, with each step's own seed as GanTraining.Train gives it; each step reads both losses, as
/// the example's loop does.
type private GanLoop(train: global.Ninjax.CSharp.PureFunc<torch.Tensor, torch.Tensor, Gan.GanMetrics>, start: State) =
    let mutable state = start
    let mutable step = 0L

    member _.State = state

    member _.Step(images: torch.Tensor, labels: torch.Tensor) =
        let struct (next, metrics) = train.Invoke(state, images, labels, Nullable(Gan.GanTraining.StepSeed(0L, step)), Nullable(), Nullable(), Nullable())
        state <- next
        step <- step + 1L
        metrics.DiscriminatorLoss.item<float32> (), metrics.GeneratorLoss.item<float32> ()

/// Replaces a state entry by a twin's tensor, checking that the Ninjax model holds the key with
/// that shape (so a changed model fails here instead of comparing different networks).
let private replace (key: string) (value: torch.Tensor) (s: State) =
    if not (State.containsKey key s) || s.[key].shape <> value.shape then
        failwithf "The bench expected the model to hold '%s' with shape %A; it holds: %O" key value.shape s
    State.add key value s

/// One step of a digits classifier and its twin: Adam at 1e-3 on the cross-entropy, and the count
/// of correct predictions (what the digits trainer reports). <paramref name="twinToState"/> maps
/// the twin's parameters (in its order) to the model's state keys; weights of dense layers are
/// transposed (TorchSharp keeps [out; in], Ninjax [in; out]).
let private classifier
    (name: string)
    (batch: int)
    (twin: unit -> torch.nn.Module<torch.Tensor, torch.Tensor>)
    (model: Digits.Models.Classifier)
    (twinToState: (string * bool) list)
    (reshape: torch.Tensor -> torch.Tensor)
    : Workload =
    torch.set_num_threads 1
    let train, _ = Digits.Data.loadBoth (Digits.Data.defaultFolder ())
    let x = train.Images.narrow(0L, 0L, int64 batch)
    let y = train.Labels.narrow(0L, 0L, int64 batch)
    torch.manual_seed 0L |> ignore
    let net = twin ()
    let adam = torch.optim.Adam(net.parameters (), 1e-3)
    let parameters = net.parameters () |> Array.ofSeq
    if parameters.Length <> twinToState.Length then
        failwithf "The twin of %s has %d parameters; the bench maps %d." name parameters.Length twinToState.Length
    let start =
        List.zip (List.ofArray parameters) twinToState
        |> List.fold
            (fun s (p, (key, transpose)) ->
                let value = if transpose then p.detach().t().contiguous().clone () else p.detach().clone ()
                replace key value s)
            (Nj.init 0L model.Train State.empty (x, y))
    let plain = Loop(Nj.purify model.Train, start)
    let donated = Loop(Nj.purifyWith (Options.donating Options.defaults) model.Train, State.map (fun _ t -> t.clone ()) start)
    let twinStep () =
        use _scope = torch.NewDisposeScope()
        adam.zero_grad ()
        let logits = net.forward (reshape x)
        let loss = torch.nn.functional.cross_entropy (logits, y)
        let correct = logits.argmax(1L).eq(y).sum()
        loss.backward ()
        adam.step () |> ignore
        correct.item<int64> () |> ignore
        loss.item<float32> ()
    { Name = name; TorchSharp = twinStep; NinjaxDonated = (fun () -> donated.Step(x, y)); Ninjax = (fun () -> plain.Step(x, y)) }

/// The digits MLP 64-256-256-10 (examples/Digits, --model mlp) at a batch size.
let mlp (batch: int) : Workload =
    classifier
        (sprintf "mlp-b%d" batch)
        batch
        (fun () ->
            torch.nn.Sequential(
                torch.nn.Linear(64L, 256L), torch.nn.ReLU(),
                torch.nn.Linear(256L, 256L), torch.nn.ReLU(),
                torch.nn.Linear(256L, 10L)))
        (Digits.Models.Mlp([ 256; 256 ], 1e-3, "model"))
        [ for i in 0..2 do
              sprintf "model/dense%d/w" i, true
              sprintf "model/dense%d/b" i, false ]
        id

/// The digits CNN (examples/Digits, the default model: two padded 3x3 convolutions of 32 and 64
/// channels, 2x2 max pooling, a dense layer of 128 and the head) at batch 32, without the
/// trainer's dropout and label smoothing (the twin has the same plain Adam step).
let cnn () : Workload =
    classifier
        "cnn-b32"
        32
        (fun () ->
            torch.nn.Sequential(
                torch.nn.Conv2d(1L, 32L, 3L, padding = 1L), torch.nn.ReLU(),
                torch.nn.Conv2d(32L, 64L, 3L, padding = 1L), torch.nn.ReLU(),
                torch.nn.MaxPool2d(2L), torch.nn.Flatten(),
                torch.nn.Linear(1024L, 128L), torch.nn.ReLU(),
                torch.nn.Linear(128L, 10L)))
        (Digits.Models.Cnn(32, 0.0, Optax.adam 1e-3, 0.0, "model"))
        [ "model/conv1/w", false; "model/conv1/b", false
          "model/conv2/w", false; "model/conv2/b", false
          "model/dense/w", true; "model/dense/b", false
          "model/head/w", true; "model/head/b", false ]
        (fun x -> x.view(-1L, 1L, 8L, 8L))

/// The conditional GAN's generator network (examples/Gan, GeneratorNet) as TorchSharp modules: noise and
/// a one-hot label in, Linear, BatchNorm1d, ReLU twice, then a Linear to the 64 pixels and tanh. The
/// indices of the Sequential name its entries ("0.weight", "1.running_mean", ...).
let private twinGeneratorNet (options: Gan.GanOptions) =
    let hidden = int64 options.Hidden
    torch.nn.Sequential(
        torch.nn.Linear(int64 (options.NoiseSize + Gan.GanOptions.Classes), hidden), torch.nn.BatchNorm1d(hidden), torch.nn.ReLU(),
        torch.nn.Linear(hidden, hidden), torch.nn.BatchNorm1d(hidden), torch.nn.ReLU(),
        torch.nn.Linear(hidden, int64 Gan.GanOptions.Pixels), torch.nn.Tanh())

/// The twin's entries (in Sequential's names) and the GeneratorNet's keys under a prefix; true
/// where the dense weight is transposed (TorchSharp keeps [out; in], Ninjax [in; out]).
let private generatorNetKeys (prefix: string) =
    [ "0.weight", "hidden1/w", true; "0.bias", "hidden1/b", false
      "1.weight", "norm1/scale", false; "1.bias", "norm1/offset", false
      "1.running_mean", "norm1/mean", false; "1.running_var", "norm1/var", false
      "3.weight", "hidden2/w", true; "3.bias", "hidden2/b", false
      "4.weight", "norm2/scale", false; "4.bias", "norm2/offset", false
      "4.running_mean", "norm2/mean", false; "4.running_var", "norm2/var", false
      "6.weight", "output/w", true; "6.bias", "output/b", false ]
    |> List.map (fun (twinName, key, transpose) -> twinName, prefix + "/" + key, transpose)

/// The twin's state entries by name (parameters and buffers: the tensors themselves, so in-place
/// updates show through).
let private entries (m: torch.nn.Module) : Collections.Generic.IDictionary<string, torch.Tensor> =
    dict [ for struct (name, p) in m.named_parameters () -> name, (p :> torch.Tensor)
           for struct (name, b) in m.named_buffers () -> name, b ]

/// The Ninjax value of a twin's tensor: detached, copied, and transposed for a dense weight.
let private asEntry (transpose: bool) (t: torch.Tensor) =
    if transpose then t.detach().t().contiguous().clone () else t.detach().clone ()

/// One training step of the conditional GAN of the main job (examples/Gan, ConditionalGan.Train,
/// purified once as GanTraining.Train does, seeded per step) at the example's batch of 64, against a
/// hand-written TorchSharp twin of the same step: the generator's step (its loss goes through the
/// discriminator, which the step does not update), the discriminator's step on the real images and
/// the generator's detached output, then the moving average of the generator's parameters and
/// BatchNorm running statistics; two Adams with the example's hyperparameters. Both start from the
/// twin's parameters, and the setup checks that their first two steps compute the same losses and
/// the same entries (fails loudly otherwise), so the twin provably computes what the example does.
let ganWith (options: Gan.GanOptions) (batch: int64) : Workload =
    torch.set_num_threads 1
    let train, _ = Digits.Data.loadBoth (Digits.Data.defaultFolder ())
    let images = Gan.GanTraining.ToGan(train.Images.narrow(0L, 0L, batch))
    let labels = train.Labels.narrow(0L, 0L, batch)

    // The twin: the generator's network, its moving average (a copy), the discriminator's layers
    // and its per-digit projection, drawn as the example draws it ((U[0,1) * 2 - 1) / sqrt(hidden)).
    torch.manual_seed 0L |> ignore
    let generatorNet = twinGeneratorNet options
    let average = twinGeneratorNet options
    let discriminatorBody =
        torch.nn.Sequential(
            torch.nn.Linear(int64 (Gan.GanOptions.Pixels + Gan.GanOptions.Classes), int64 options.Hidden), torch.nn.LeakyReLU(0.2),
            torch.nn.Linear(int64 options.Hidden, int64 options.Hidden), torch.nn.LeakyReLU(0.2))
    let discriminatorOutput = torch.nn.Linear(int64 options.Hidden, 1L)
    let embed =
        torch.nn.Parameter((torch.rand([| int64 Gan.GanOptions.Classes; int64 options.Hidden |]) * 2.0 - 1.0) / sqrt (float options.Hidden))
    let generatorEntries = entries generatorNet
    let averageEntries = entries average
    do
        use _ = torch.no_grad ()
        for KeyValue (name, t) in generatorEntries do
            averageEntries.[name].copy_ t |> ignore
    let discriminatorParameters =
        [| yield! discriminatorBody.parameters (); yield! discriminatorOutput.parameters (); yield embed |]
    let generatorAdam = torch.optim.Adam(generatorNet.parameters (), options.LearningRate, options.Beta1)
    let discriminatorAdam = torch.optim.Adam(discriminatorParameters, options.LearningRate, options.Beta1)
    // The moving average runs over every entry of the generator's network, as MovingAverage.Update
    // does: floating-point ones move towards the source, the others (BatchNorm's counter) are copied.
    let averagePairs = [| for KeyValue (name, t) in generatorEntries -> averageEntries.[name], t |]
    // lerp_ takes its weight as a tensor: one made here, outside every step's dispose scope.
    let averageWeight = torch.tensor (float32 (1.0 - options.EmaDecay))

    let logits (x: torch.Tensor) (oneHot: torch.Tensor) =
        let h = discriminatorBody.forward (torch.cat ([| x; oneHot |], 1L))
        discriminatorOutput.forward(h).squeeze(1L) + (h * embed.index_select(0L, labels)).sum 1L

    /// The twin's step with noise from a fresh generator of this seed (the example draws from a
    /// fresh Nj.Rng() generator each step); returns the two losses as the example reports them.
    let twinStep (noiseSeed: uint64) =
        use _scope = torch.NewDisposeScope()
        use noiseGenerator = new torch.Generator(noiseSeed)
        let noise = torch.randn([| batch; int64 options.NoiseSize |], generator = noiseGenerator)
        let oneHot = torch.nn.functional.one_hot(labels, int64 Gan.GanOptions.Classes).to_type torch.float32
        // The generator's step: the discriminator is read, not differentiated (as the example's
        // step targets only the generator's network), so its parameters stop requiring gradients.
        for p in discriminatorParameters do p.requires_grad <- false
        generatorAdam.zero_grad ()
        let fake = generatorNet.forward (torch.cat ([| noise; oneHot |], 1L))
        let generatorLoss = torch.nn.functional.softplus(-(logits fake oneHot)).mean()
        generatorLoss.backward ()
        generatorAdam.step () |> ignore
        for p in discriminatorParameters do p.requires_grad <- true
        // The discriminator's step on the real images and the generator's output before its update.
        discriminatorAdam.zero_grad ()
        let fake = fake.detach ()
        let discriminatorLoss =
            torch.nn.functional.softplus(-(logits images oneHot)).mean() + torch.nn.functional.softplus(logits fake oneHot).mean()
        discriminatorLoss.backward ()
        discriminatorAdam.step () |> ignore
        do
            use _ = torch.no_grad ()
            for averaged, source in averagePairs do
                if averaged.is_floating_point () then averaged.lerp_(source, averageWeight) |> ignore
                else averaged.copy_ source |> ignore
        // The step reaches the average's tensors only, and a collected module disposes its tensors.
        GC.KeepAlive average
        discriminatorLoss.item<float32> (), generatorLoss.item<float32> ()

    // Ninjax: the example's model and state, every entry replaced by the twin's; the optimizers'
    // states are left as the model creates them, which must be fresh, as the twin's Adams are.
    let model = Gan.ConditionalGan(options)
    let twinEntries =
        let body = entries discriminatorBody
        let output = entries discriminatorOutput
        [ for twinName, key, transpose in generatorNetKeys "gan/generator/net" do
              yield key, transpose, generatorEntries.[twinName]
          for twinName, key, transpose in generatorNetKeys "gan/average" do
              yield key, transpose, averageEntries.[twinName]
          yield "gan/discriminator/hidden1/w", true, body.["0.weight"]
          yield "gan/discriminator/hidden1/b", false, body.["0.bias"]
          yield "gan/discriminator/hidden2/w", true, body.["2.weight"]
          yield "gan/discriminator/hidden2/b", false, body.["2.bias"]
          yield "gan/discriminator/output/w", true, output.["weight"]
          yield "gan/discriminator/output/b", false, output.["bias"]
          yield "gan/discriminator/embed", false, (embed :> torch.Tensor) ]
    let start =
        twinEntries
        |> List.fold (fun s (key, transpose, t) -> replace key (asEntry transpose t) s) (Gan.GanTraining.Init(model, images, labels, 0L))
    let mapped = set [ for key, _, _ in twinEntries -> key ]
    for key in State.keys start do
        let fresh =
            if key.EndsWith "/opt/count" || key.Contains "/opt/mu/" || key.Contains "/opt/nu/" then start.[key].count_nonzero().ToInt64() = 0L
            else key.EndsWith "/opt/learning_rate" || key.EndsWith "/opt/targets"
        if not (mapped.Contains key || fresh) then
            failwithf "The GAN bench expected every entry to be the twin's or a fresh optimizer's; '%s' (shape %A) is neither." key start.[key].shape
    let purified (donate: bool) =
        CSharpNj.Pure<Gan.GanMetrics>(Func<torch.Tensor, torch.Tensor, Gan.GanMetrics>(fun x y -> model.Train(x, y)), name = "ConditionalGan.Train", donate = donate)
    let plain = GanLoop(purified false, start)
    let donated = GanLoop(purified true, State.map (fun _ t -> t.clone ()) start)

    // The check: the first two steps of all three from the same parameters, with the same noise
    // (the twin's generator seeded as Nj.Rng() seeds the step's first draw), give the same losses,
    // and after them every entry (both networks, the moving average, the running statistics)
    // agrees. The second step's losses and the entries rest on both Adams' first updates.
    let noiseSeed (callSeed: int64) = snd (Purify.fn (Options.seeded callSeed) (fun () -> Prog.rngSeed) State.empty ())
    let mutable lossDifference = 0.0
    let mutable entryDifference = 0.0
    let mutable beforeNormDifference = 0.0
    let disagree (what: string) (difference: float) (tolerance: float) =
        if not (difference <= tolerance) then
            failwithf "The GAN twin and Ninjax disagree on %s by %.3g (tolerance %g): the twin no longer computes what examples/Gan does." what difference tolerance
    for step in 0L .. 1L do
        let twinD, twinG = twinStep (noiseSeed (Gan.GanTraining.StepSeed(0L, step)))
        for label, (loop: GanLoop) in [ "Ninjax", plain; "Ninjax, donated", donated ] do
            let d, g = loop.Step(images, labels)
            for what, twin, ninjax in [ "discriminator", twinD, d; "generator", twinG, g ] do
                let difference = abs (float twin - float ninjax)
                disagree (sprintf "the %s's loss of step %d (%s)" what step label) difference 1e-5
                lossDifference <- max lossDifference difference
    // The dense biases right before a BatchNorm have a gradient of zero in exact arithmetic (the
    // normalisation subtracts the batch mean), so both Adams move them by rounding noise scaled up
    // to steps of up to about the learning rate; they change no output. They get a bound of two
    // steps' size, every other entry the tight one.
    let beforeNorm = set [ "gan/generator/net/hidden1/b"; "gan/generator/net/hidden2/b" ]
    for label, (loop: GanLoop) in [ "Ninjax", plain; "Ninjax, donated", donated ] do
        for key, transpose, t in twinEntries do
            let difference = (asEntry transpose t - loop.State.[key]).abs().max().ToDouble()
            if beforeNorm.Contains key then
                disagree (sprintf "'%s' after two steps (%s)" key label) difference (2.0 * options.LearningRate)
                beforeNormDifference <- max beforeNormDifference difference
            else
                disagree (sprintf "'%s' after two steps (%s)" key label) difference 1e-5
                entryDifference <- max entryDifference difference
    printfn
        "gan-b64: the twin and Ninjax agree on two steps' losses to %.2g and on every entry after them to %.2g (the biases before BatchNorm to %.2g)."
        lossDifference entryDifference beforeNormDifference

    // Timed: the twin's noise from a fresh generator each step, as the example's.
    let mutable twinSteps = 2UL
    let twinTimed () =
        twinSteps <- twinSteps + 1UL
        fst (twinStep twinSteps)
    { Name = "gan-b64"; TorchSharp = twinTimed; NinjaxDonated = (fun () -> fst (donated.Step(images, labels))); Ninjax = (fun () -> fst (plain.Step(images, labels))) }

/// The GAN of the main job at its batch of 64.
let gan () = ganWith Gan.GanOptions.Default 64L

/// Every workload the benchmarks compare, by name.
let all () : (string * (unit -> Workload)) list =
    [ "mlp-b8", (fun () -> mlp 8); "mlp-b128", (fun () -> mlp 128); "cnn-b32", cnn; "gan-b64", gan ]

/// Diagnostics beside them, for --interleaved and --profile only: the GAN's step with 4 hidden
/// units, 4 noise inputs and a batch of 4 (`gan-tiny`), where the arithmetic is negligible, so the
/// steps differ by what each framework adds per operation and per step (TorchSharp's dispatch of
/// the twin's optimizer, Ninjax's bookkeeping).
let diagnostics () : (string * (unit -> Workload)) list =
    [ "gan-tiny", (fun () -> ganWith (Gan.GanOptions(NoiseSize = 4, Hidden = 4)) 4L) ]

/// The workload or diagnostic of that name; an error listing them all otherwise.
let find (name: string) : unit -> Workload =
    let every = all () @ diagnostics ()
    match every |> List.tryFind (fun (n, _) -> n = name) with
    | Some (_, make) -> make
    | None -> failwithf "No workload '%s'; the workloads are: %s." name (every |> List.map fst |> String.concat ", ")
