module Ninjax.Tests.TorchModuleTests

open System
open System.Collections.Generic
open System.Threading.Tasks
open Expecto
open TorchSharp
open Ninjax
open Ninjax.Tests.Helpers

type private T = torch.Tensor
type private TModule = torch.nn.Module<torch.Tensor, torch.Tensor>

/// A user's own TorchSharp module: two Linear layers and a parameter of its own.
type UserMlp() as this =
    inherit torch.nn.Module<torch.Tensor, torch.Tensor>("UserMlp")
    let fc1 = torch.nn.Linear(4L, 8L)
    let fc2 = torch.nn.Linear(8L, 2L)
    let scale = torch.nn.Parameter(torch.linspace(0.5, 1.5, 2L))
    do this.RegisterComponents()
    override _.forward(x: torch.Tensor) = fc2.call(torch.nn.functional.relu (fc1.call x)).mul scale

/// A user's module holding a natively implemented GRU, which the adapter cannot rebind.
type WithGru() as this =
    inherit torch.nn.Module<torch.Tensor, torch.Tensor>("WithGru")
    let rnn = torch.nn.GRU(4L, 3L)
    do this.RegisterComponents()
    override _.forward(x: torch.Tensor) =
        let struct (y, _) = rnn.forward(x, null)
        y

/// The state key of a TorchSharp name under a prefix.
let private keyOf (prefix: string) (torchName: string) = prefix + "/" + torchName.Replace('.', '/')

/// Copies the adapter's state entries into a plain TorchSharp module with the same layout.
let private loadInto (plain: torch.nn.Module) (state: State) (prefix: string) =
    use _ = torch.no_grad ()
    for struct (n, p) in plain.named_parameters () do
        p.copy_ state.[keyOf prefix n] |> ignore
    for struct (n, b) in plain.named_buffers () do
        b.copy_ state.[keyOf prefix n] |> ignore

/// A fixed random weighting, so a loss depends on every output element differently.
let private weighting (like: T) =
    let g = new torch.Generator(42UL)
    torch.randn(like.shape, generator = g)

/// Checks that the wrapped module gives the same output, loss, gradients (w.r.t. its state
/// entries, through Nj.grad) and updated buffers as the plain TorchSharp module with the same
/// weights, computing its gradients with loss.backward().
let private agreesWithPlain (make: unit -> 'M) (run: TorchModule<'M> -> T -> T) (runPlain: 'M -> T -> T) (x: T) (tol: float) =
    let adapter = TorchModule(Func<'M>(make), name = "model")
    let state = Nj.init 3L (run adapter) State.empty x
    let _, y = Nj.purify (run adapter) state x
    let r = weighting y
    let step = Nj.purify (fun x -> Nj.grad (fun x -> (run adapter x).mul(r).sum()) adapter.ParameterTargets x)
    let after, (loss, _, grads) = step state x
    let plain = make ()
    loadInto plain state "model"
    let yPlain = runPlain plain x
    let lossPlain = yPlain.mul(r).sum()
    lossPlain.backward ()
    expectClose y (yPlain.detach ()) tol "output"
    expectClose loss (lossPlain.detach ()) tol "loss"
    let names = plain.named_parameters () |> Seq.map (fun struct (n, p) -> n, p) |> List.ofSeq
    Expect.isNonEmpty names "the module has parameters"
    Expect.equal (State.keys grads) (names |> List.map (fst >> keyOf "model") |> List.sort) "one gradient per parameter"
    for n, p in names do
        Expect.isTrue (p.grad.abs().sum().item<float32> () > 0f) (sprintf "plain gradient of %s is non-zero" n)
        expectClose grads.[keyOf "model" n] p.grad tol (sprintf "gradient of %s" n)
    for struct (n, b) in plain.named_buffers () do
        expectClose after.[keyOf "model" n] b (if b.dtype = torch.int64 then 0.0 else tol) (sprintf "buffer %s after one training call" n)
    adapter, state

let private lstmOut (o: T, h: T, c: T) = torch.cat([| o.flatten (); h.flatten (); c.flatten () |], 0L)

let private plainLstm (m: Modules.LSTM) (x: T) =
    let struct (o, h, c) = m.forward(x, Nullable())
    lstmOut (o, h, c)

let private sequential (layers: (string * TModule) list) = torch.nn.Sequential(Array.ofList layers)

/// A regression model whose encoder is a wrapped TorchSharp Sequential with BatchNorm.
type Regressor(?name: string) as this =
    inherit Module(defaultArg name "model")
    let enc =
        this.Sub(
            "enc",
            fun () ->
                TorchModule(fun () ->
                    sequential
                        [ "0", torch.nn.Linear(3L, 16L)
                          "1", torch.nn.BatchNorm1d(16L)
                          "2", torch.nn.Tanh()
                          "3", torch.nn.Linear(16L, 1L) ])
        )
    member _.Enc = enc
    member _.Loss(x: T, y: T) = (enc.Forward x - y).square().mean()
    member this.Train(x: T, y: T) =
        let loss, ps, gs = Nj.grad this.Loss enc.ParameterTargets (x, y)
        this.PutM(State.map (fun k p -> p - 0.1 * gs.[k]) ps)
        loss

/// A model that creates its wrapped layer inline, inside the purified call, as Sub allows.
type InlineModel(?name: string) =
    inherit Module(defaultArg name "model")
    member this.Predict(x: T) =
        let enc = this.Sub("enc", fun () -> TorchModule(fun () -> torch.nn.Linear(4L, 3L)))
        enc.Forward x
    member this.Step(x: T) =
        let enc = this.Sub("enc", fun () -> TorchModule(fun () -> torch.nn.Linear(4L, 3L)))
        let loss, ps, gs = Nj.grad (fun x -> (this.Predict x).square().mean()) enc.ParameterTargets x
        this.PutM(State.map (fun k p -> p - 0.1 * gs.[k]) ps)
        loss

[<Tests>]
let tests =
    testList "torch modules" [
        testCase "Linear: outputs and gradients match the plain module" <| fun () ->
            agreesWithPlain (fun () -> torch.nn.Linear(5L, 3L)) (fun a x -> a.Forward x) (fun m x -> m.call x) (torch.randn(4L, 5L)) 1e-5
            |> ignore

        testCase "Conv2d: outputs and gradients match the plain module" <| fun () ->
            agreesWithPlain
                (fun () -> torch.nn.Conv2d(2L, 3L, 3L, stride = 1L, padding = 1L))
                (fun a x -> a.Forward x)
                (fun m x -> m.call x)
                (torch.randn(2L, 2L, 6L, 6L))
                1e-4
            |> ignore

        testCase "LayerNorm: outputs and gradients match the plain module" <| fun () ->
            agreesWithPlain (fun () -> torch.nn.LayerNorm([| 6L |])) (fun a x -> a.Forward x) (fun m x -> m.call x) (torch.randn(4L, 6L)) 1e-5
            |> ignore

        testCase "Sequential: keys are mapped to paths; outputs and gradients match" <| fun () ->
            let make () =
                sequential [ "0", torch.nn.Linear(4L, 8L); "1", torch.nn.ReLU(); "2", torch.nn.Linear(8L, 2L) ]
            let _, state = agreesWithPlain make (fun a x -> a.Forward x) (fun m x -> m.call x) (torch.randn(5L, 4L)) 1e-5
            Expect.equal (State.keys state) [ "model/0/bias"; "model/0/weight"; "model/2/bias"; "model/2/weight" ] "keys"

        testCase "a user's own module: outputs and gradients match" <| fun () ->
            let _, state = agreesWithPlain (fun () -> new UserMlp()) (fun a x -> a.Forward x) (fun m x -> m.call x) (torch.randn(5L, 4L)) 1e-5
            Expect.equal
                (State.keys state)
                [ "model/fc1/bias"; "model/fc1/weight"; "model/fc2/bias"; "model/fc2/weight"; "model/scale" ]
                "keys"

        testCase "LSTM (2 layers, bidirectional): output, h_n, c_n and gradients match" <| fun () ->
            let _, state =
                agreesWithPlain
                    (fun () -> torch.nn.LSTM(3L, 4L, numLayers = 2L, bidirectional = true))
                    (fun a x -> let struct (o, h, c) = a.ForwardLstm x in lstmOut (o, h, c))
                    plainLstm
                    (torch.randn(6L, 2L, 3L))
                    1e-5
            Expect.contains (State.keys state) "model/weight_hh_l1_reverse" "reverse weights are entries"

        testCase "LSTM batch-first with initial states matches" <| fun () ->
            let h0 = torch.randn(1L, 3L, 4L)
            let c0 = torch.randn(1L, 3L, 4L)
            agreesWithPlain
                (fun () -> torch.nn.LSTM(2L, 4L, batchFirst = true))
                (fun a x -> let struct (o, h, c) = a.ForwardLstm(x, h0, c0) in lstmOut (o, h, c))
                (fun m x ->
                    let struct (o, h, c) = m.forward(x, Nullable<struct (T * T)>(struct (h0, c0)))
                    lstmOut (o, h, c))
                (torch.randn(3L, 5L, 2L))
                1e-5
            |> ignore

        testCase "LSTM Forward returns the output sequence" <| fun () ->
            let lstm = TorchModule((fun () -> torch.nn.LSTM(3L, 4L)), name = "lstm")
            let x = torch.randn(5L, 2L, 3L)
            let state = Nj.init 0L lstm.Forward State.empty x
            let _, y = Nj.purify lstm.Forward state x
            let _, struct (o, _, _) = Nj.purify (fun x -> lstm.ForwardLstm x) state x
            Expect.equal y.shape [| 5L; 2L; 4L |] "shape"
            expectIdentical y o "same as ForwardLstm's output"

        testCase "BatchNorm1d in training mode: outputs, gradients and running statistics match" <| fun () ->
            let _, state =
                agreesWithPlain (fun () -> torch.nn.BatchNorm1d(3L)) (fun a x -> a.Forward x) (fun m x -> m.call x) (torch.randn(8L, 3L) * 2.0f + 1.0f) 1e-5
            Expect.equal
                (State.keys state)
                [ "model/bias"; "model/num_batches_tracked"; "model/running_mean"; "model/running_var"; "model/weight" ]
                "keys"

        testCase "BatchNorm2d in training mode: outputs, gradients and running statistics match" <| fun () ->
            agreesWithPlain (fun () -> torch.nn.BatchNorm2d(2L)) (fun a x -> a.Forward x) (fun m x -> m.call x) ((torch.randn(4L, 2L, 3L, 3L) + 0.5f)) 1e-5
            |> ignore

        testCase "BatchNorm: training writes running statistics back; the input state is unchanged" <| fun () ->
            let bn = TorchModule((fun () -> torch.nn.BatchNorm1d(3L)), name = "bn")
            let x = torch.randn(8L, 3L) + 3.0f
            let state = Nj.init 0L bn.Forward State.empty x
            let s1, _ = Nj.purify bn.Forward state x
            let s2, _ = Nj.purify bn.Forward s1 x
            expectIdentical state.["bn/running_mean"] (torch.zeros 3L) "input state untouched"
            expectIdentical state.["bn/num_batches_tracked"] (torch.tensor 0L) "counter untouched"
            Expect.equal (s1.["bn/num_batches_tracked"].item<int64> ()) 1L "one batch"
            Expect.equal (s2.["bn/num_batches_tracked"].item<int64> ()) 2L "two batches"
            let mean = x.mean([| 0L |])
            expectClose s1.["bn/running_mean"] (mean * 0.1f) 1e-5 "momentum 0.1 from zero"
            expectClose s2.["bn/running_mean"] (mean * 0.19f) 1e-5 "second update"

        testCase "BatchNorm: a gradient step in training mode updates the statistics once" <| fun () ->
            let model = Regressor()
            let x = torch.randn(16L, 3L)
            let y = x.sum([| 1L |], keepdim = true)
            let state = Nj.init 0L model.Train State.empty (x, y)
            Expect.equal (state.["model/enc/1/num_batches_tracked"].item<int64> ()) 0L "init leaves statistics alone"
            let s1, _ = Nj.purify model.Train state (x, y)
            Expect.equal (s1.["model/enc/1/num_batches_tracked"].item<int64> ()) 1L "one update per step"
            Expect.isFalse (identical s1.["model/enc/1/running_mean"] state.["model/enc/1/running_mean"]) "mean moved"
            Expect.isFalse s1.["model/enc/1/running_mean"].requires_grad "written back without graph"

        testCase "BatchNorm in eval mode uses the state's statistics and writes nothing" <| fun () ->
            let bn = TorchModule((fun () -> torch.nn.BatchNorm1d(3L)), name = "bn")
            let x = torch.randn(4L, 3L)
            let state =
                Nj.init 0L bn.Forward State.empty x
                |> State.add "bn/running_mean" (vec [ 1f; -2f; 0.5f ])
                |> State.add "bn/running_var" (vec [ 4f; 0.25f; 1f ])
            bn.Eval()
            let outcome = Nj.purifyTracked Options.defaults bn.Forward state x
            Expect.isEmpty outcome.Modified "eval writes nothing"
            let plain = torch.nn.BatchNorm1d(3L)
            loadInto plain state "bn"
            plain.eval ()
            expectClose outcome.Output (plain.call(x).detach ()) 1e-6 "same as the plain module in eval"
            expectClose outcome.Output ((x - vec [ 1f; -2f; 0.5f ]).div((vec [ 4f; 0.25f; 1f ] + 1e-5f).sqrt ())) 1e-5 "normalised by the state's statistics"
            let trained = Nj.purifyTracked Options.defaults (fun x -> bn.Forward(x, true)) state x
            Expect.equal trained.Modified (set [ "bn/num_batches_tracked"; "bn/running_mean"; "bn/running_var" ]) "the call argument overrides the mode"

        // Sequenced: other tests draw from torch's global generator, which this test observes.
        testSequenced <| testCase "the same seed gives bit-identical parameters, another seed different ones; torch's generator is untouched" (fun () ->
            let make () = sequential [ "0", torch.nn.Linear(6L, 5L); "1", torch.nn.BatchNorm1d(5L) ]
            let net = TorchModule(Func<_>(make), name = "net")
            let x = torch.randn(4L, 6L)
            torch.manual_seed 11L |> ignore
            let expected = torch.rand 5L
            torch.manual_seed 11L |> ignore
            let a = Nj.init 7L net.Forward State.empty x
            let after = torch.rand 5L
            let b = Nj.init 7L net.Forward State.empty x
            let c = Nj.init 8L net.Forward State.empty x
            expectSameState a b "same seed"
            Expect.isFalse (identical a.["net/0/weight"] c.["net/0/weight"]) "another seed, another weight"
            Expect.isFalse (identical a.["net/0/bias"] c.["net/0/bias"]) "another seed, another bias"
            expectIdentical after expected "the global generator continues as if init had not run"
            let bound = 1.0 / sqrt 6.0
            Expect.isTrue (a.["net/0/weight"].abs().max().item<float32> () <= float32 bound) "TorchSharp's own initialisation (within 1/sqrt(fan-in))"
            for k in State.keys a do
                Expect.isFalse a.[k].requires_grad (sprintf "%s carries no graph" k))

        testCase "Ninjax's Dense matches the wrapped TorchSharp Linear" <| fun () ->
            let torchLin = TorchModule((fun () -> torch.nn.Linear(5L, 3L)), name = "t")
            let njLin = Dense(3, name = "n")
            let x = torch.randn(4L, 5L)
            let ts = Nj.init 1L torchLin.Forward State.empty x
            let ns = State.ofSeq [ "n/w", ts.["t/weight"].t().contiguous (); "n/b", ts.["t/bias"] ]
            let r = weighting (torch.zeros(4L, 3L))
            let loss (f: T -> T) x = (f x).mul(r).sum()
            let _, (tl, _, tg) = Nj.purify (fun x -> Nj.grad (loss torchLin.Forward) [ Target.Module torchLin ] x) ts x
            let _, (nl, _, ng) = Nj.purify (fun x -> Nj.grad (loss njLin.Forward) [ Target.Module njLin ] x) ns x
            let _, ty = Nj.purify torchLin.Forward ts x
            let _, ny = Nj.purify njLin.Forward ns x
            expectClose ny ty 1e-6 "outputs"
            expectClose nl tl 1e-5 "losses"
            expectClose ng.["n/w"] (tg.["t/weight"].t ()) 1e-6 "weight gradients (transposed layout)"
            expectClose ng.["n/b"] tg.["t/bias"] 1e-6 "bias gradients"

        testCase "Ninjax's Conv2D matches the wrapped TorchSharp Conv2d" <| fun () ->
            let torchConv = TorchModule((fun () -> torch.nn.Conv2d(3L, 4L, 3L, stride = 2L, padding = 1L)), name = "t")
            let njConv = Conv2D(4, 3, stride = 2, padding = 1, name = "n")
            let x = torch.randn(2L, 3L, 7L, 7L)
            let ts = Nj.init 1L torchConv.Forward State.empty x
            let ns = State.ofSeq [ "n/w", ts.["t/weight"]; "n/b", ts.["t/bias"] ]
            let _, ty = Nj.purify torchConv.Forward ts x
            let r = weighting ty
            let loss (f: T -> T) x = (f x).mul(r).sum()
            let _, (tl, _, tg) = Nj.purify (fun x -> Nj.grad (loss torchConv.Forward) [ Target.Module torchConv ] x) ts x
            let _, (nl, _, ng) = Nj.purify (fun x -> Nj.grad (loss njConv.Forward) [ Target.Module njConv ] x) ns x
            let _, ny = Nj.purify njConv.Forward ns x
            Expect.equal ny.shape [| 2L; 4L; 4L; 4L |] "output shape"
            expectClose ny ty 1e-5 "outputs"
            expectClose nl tl 1e-4 "losses"
            expectClose ng.["n/w"] tg.["t/weight"] 1e-5 "kernel gradients"
            expectClose ng.["n/b"] tg.["t/bias"] 1e-5 "bias gradients"

        testCase "Ninjax's Conv2D and LayerNormalization create their entries from the seed" <| fun () ->
            let conv = Conv2D(4, 3, name = "conv")
            let norm = LayerNormalization(name = "norm")
            let f (x: T) = norm.Forward(Ops.flatten (Ops.maxPool2d 2 (conv.Forward x)))
            let x = torch.randn(2L, 1L, 8L, 8L)
            let a = Nj.init 5L f State.empty x
            let b = Nj.init 5L f State.empty x
            let c = Nj.init 6L f State.empty x
            Expect.equal (State.keys a) [ "conv/b"; "conv/w"; "norm/offset"; "norm/scale" ] "keys"
            Expect.equal a.["conv/w"].shape [| 4L; 1L; 3L; 3L |] "kernel layout"
            expectSameState a b "same seed"
            Expect.isFalse (identical a.["conv/w"] c.["conv/w"]) "another seed"
            Expect.isTrue (a.["conv/w"].abs().max().item<float32> () <= 1f / 3f) "within 1/sqrt(fan-in)"
            let _, y = Nj.purify f a x
            Expect.equal y.shape [| 2L; 36L |] "conv 6x6, pool 3x3, 4 channels"
            expectClose (y.mean([| 1L |])) (torch.zeros 2L) 1e-5 "layer-normalised rows"

        testCase "a wrapped module created inline inside a purified call keeps working across calls" <| fun () ->
            let model = InlineModel()
            let x = torch.randn(6L, 4L)
            let state = Nj.init 0L model.Step State.empty x
            Expect.equal (State.keys state) [ "model/enc/bias"; "model/enc/weight" ] "keys"
            let step = Nj.purify model.Step
            let s1, l1 = step state x
            let s2, l2 = step s1 x
            let _, l3 = step s2 x
            Expect.isLessThan (l3.item<float32> ()) (l1.item<float32> ()) "loss falls"
            Expect.isLessThan (l2.item<float32> ()) (l1.item<float32> ()) "loss falls after one step"
            let _, y = Nj.purify model.Predict s2 x
            let plain = torch.nn.Linear(4L, 3L)
            loadInto plain s2 "model/enc"
            expectClose y (plain.call(x).detach ()) 1e-6 "computes with the state's weights"

        testCase "a training loop on a wrapped module lowers the loss" <| fun () ->
            let model = Regressor()
            let g = new torch.Generator(3UL)
            let x = torch.randn([| 64L; 3L |], generator = g)
            let y = x.matmul((vec [ 1f; -2f; 0.5f ]).unsqueeze 1L).tanh ()
            let state = Nj.init 0L model.Train State.empty (x, y)
            let train = Nj.purify model.Train
            let losses =
                runSteps 30 train state (x, y) |> List.map (fun (_, l) -> l.item<float32> ())
            Expect.isLessThan (List.last losses) (List.head losses * 0.5f) (sprintf "loss falls: %A" losses)

        testCase "a training step keeps only its survivors (no leak per call)" <| fun () ->
            let model = Regressor()
            let x = torch.randn(8L, 3L)
            let y = torch.randn(8L, 1L)
            let state = Nj.init 0L model.Train State.empty (x, y)
            let train = Nj.purify model.Train
            let s1, _ = train state (x, y)
            use scope = torch.NewDisposeScope()
            let before = scope.DisposablesCount
            train s1 (x, y) |> ignore
            Expect.equal (scope.DisposablesCount - before) (State.count s1 + 1) "every entry is rewritten, plus the loss"

        testCase "parallel calls from 8 threads equal the serial results" <| fun () ->
            let net = TorchModule((fun () -> sequential [ "0", torch.nn.Linear(6L, 8L); "1", torch.nn.BatchNorm1d(8L) ]), name = "net")
            let xs = [| for i in 0..7 -> torch.randn(5L, 6L) + float32 i |]
            let state = Nj.init 0L net.Forward State.empty xs.[0]
            let f = Nj.purify net.Forward
            let serial = xs |> Array.map (f state)
            let inParallel = Task.WhenAll([| for x in xs -> Task.Run(fun () -> f state x) |]).Result
            for i in 0..7 do
                expectIdentical (snd inParallel.[i]) (snd serial.[i]) (sprintf "output %d" i)
                expectSameState (fst inParallel.[i]) (fst serial.[i]) (sprintf "state %d" i)

        testCase "wrong input shape names the path, the module and both shapes" <| fun () ->
            let enc = TorchModule((fun () -> torch.nn.Linear(64L, 128L)), name = "enc")
            let state = Nj.init 0L enc.Forward State.empty (torch.randn(2L, 64L))
            let msg = throwsWith<ArgumentException> (fun () -> Nj.purify enc.Forward state (torch.randn(4L, 32L)) |> ignore)
            mentions msg [ "enc"; "Linear"; "[4, 32]"; "4x32"; "64x128" ]

        testCase "a state entry of another shape is named with both shapes" <| fun () ->
            let small = TorchModule((fun () -> torch.nn.Linear(4L, 2L)), name = "lin")
            let big = TorchModule((fun () -> torch.nn.Linear(8L, 2L)), name = "lin")
            let state = Nj.init 0L small.Forward State.empty (torch.randn(1L, 4L))
            let msg = throwsWith<ArgumentException> (fun () -> Nj.purify big.Forward state (torch.randn(1L, 8L)) |> ignore)
            mentions msg [ "lin/weight"; "[2, 4]"; "[2, 8]" ]

        testCase "a missing entry outside init is named" <| fun () ->
            let lin = TorchModule((fun () -> torch.nn.Linear(4L, 2L)), name = "lin")
            let msg = throwsWith<KeyNotFoundException> (fun () -> Nj.purify lin.Forward State.empty (torch.randn(1L, 4L)) |> ignore)
            mentions msg [ "lin/weight" ]

        testCase "natively implemented modules other than LSTM are refused by name" <| fun () ->
            let msg = throwsWith<NotSupportedException> (fun () -> TorchModule((fun () -> torch.nn.GRU(4L, 3L)), name = "g") |> ignore)
            mentions msg [ "GRU"; "LSTM" ]
            let msg = throwsWith<NotSupportedException> (fun () -> TorchModule((fun () -> new WithGru()), name = "u") |> ignore)
            mentions msg [ "GRU"; "'rnn'" ]

        testCase "an LSTM with dropout between layers is refused" <| fun () ->
            let msg =
                throwsWith<NotSupportedException> (fun () ->
                    TorchModule((fun () -> torch.nn.LSTM(3L, 4L, numLayers = 2L, dropout = 0.5)), name = "l") |> ignore)
            mentions msg [ "dropout"; "2 layers" ]

        testCase "LSTM input and state shapes are checked by name" <| fun () ->
            let lstm = TorchModule((fun () -> torch.nn.LSTM(3L, 4L)), name = "lstm")
            let state = Nj.init 0L lstm.Forward State.empty (torch.randn(5L, 2L, 3L))
            let msg = throwsWith<ArgumentException> (fun () -> Nj.purify lstm.Forward state (torch.randn(5L, 2L, 7L)) |> ignore)
            mentions msg [ "lstm"; "(seq, batch, 3)"; "[5, 2, 7]" ]
            let bad = torch.zeros(1L, 3L, 4L)
            let msg =
                throwsWith<ArgumentException> (fun () ->
                    Nj.purify (fun (x: T) -> lstm.ForwardLstm(x, bad, bad)) state (torch.randn(5L, 2L, 3L)) |> ignore)
            mentions msg [ "h0"; "[1, 2, 4]"; "[1, 3, 4]" ]

        testCase "Forward on a module that does not map a tensor to a tensor points to Call" <| fun () ->
            let bilinear = TorchModule((fun () -> torch.nn.Bilinear(2L, 3L, 4L)), name = "bi")
            let a = torch.randn(5L, 2L)
            let b = torch.randn(5L, 3L)
            let msg = throwsWith<NotSupportedException> (fun () -> Nj.init 0L bilinear.Forward State.empty a |> ignore)
            mentions msg [ "Bilinear"; "Call" ]
            let call (a: T, b: T) = bilinear.Call(fun m -> m.call(a, b))
            let state = Nj.init 0L call State.empty (a, b)
            let _, (_, _, gs) = Nj.purify (fun ab -> Nj.grad (fun ab -> (call ab).sum()) bilinear.ParameterTargets ab) state (a, b)
            Expect.equal (State.keys gs) [ "bi/bias"; "bi/weight" ] "Call differentiates too"

        testCase "Ninjax's Conv2D names a wrong channel count" <| fun () ->
            let conv = Conv2D(4, 3, name = "conv")
            let state = Nj.init 0L conv.Forward State.empty (torch.randn(1L, 3L, 8L, 8L))
            let msg = throwsWith<ArgumentException> (fun () -> Nj.purify conv.Forward state (torch.randn(1L, 2L, 8L, 8L)) |> ignore)
            mentions msg [ "conv"; "3 input channels"; "[1, 2, 8, 8]" ]
            let msg = throwsWith<ArgumentException> (fun () -> Nj.purify conv.Forward state (torch.randn(8L, 8L)) |> ignore)
            mentions msg [ "[8, 8]"; "[batch, channels, height, width]" ]
    ]
