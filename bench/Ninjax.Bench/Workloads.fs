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

/// Every workload, by name.
let all () : (string * (unit -> Workload)) list =
    [ "mlp-b8", (fun () -> mlp 8); "mlp-b128", (fun () -> mlp 128); "cnn-b32", cnn ]
