module Ninjax.Tests.ParameterTests

open System
open System.IO
open Expecto
open TorchSharp
open Ninjax
open Ninjax.Tests.Helpers

type private T = torch.Tensor

/// A classifier with every kind of entry: Ninjax layers, a Ninjax BatchNormalization and a
/// wrapped TorchSharp BatchNorm1d (running statistics and an Int64 num_batches_tracked), a
/// moving average kept with Buffer, an inline submodule, and its optimizer under its own path.
type Mixed(?name: string) as this =
    inherit Module(defaultArg name "model")
    // Train reads the average after the gradient: declared here, it is a buffer for a loaded state too.
    do this.DeclareBuffers("avg")
    let opt = this.Sub("opt", fun () -> Optimizer(Optax.adam 0.01))
    let dense = this.Sub("dense", fun () -> Dense 6)
    let norm = this.Sub("norm", fun () -> BatchNormalization())
    let torchNorm = this.Sub("tnorm", fun () -> TorchModule(fun () -> torch.nn.BatchNorm1d(6L)))

    member _.Opt = opt
    member _.Dense = dense
    member _.Norm = norm
    member _.TorchNorm = torchNorm

    member this.Predict(x: T, training: bool) =
        let h = torchNorm.Forward(norm.Forward(dense.Forward x, training), training)
        this.Sub("head", fun () -> Dense 2).Forward(torch.nn.functional.relu h)

    member this.Loss(x: T, y: T) = (this.Predict(x, true) - y).square().mean()

    /// One step on the whole model: Target.Module this.
    member this.Train(x: T, y: T) =
        let metrics = opt.Minimize(this.Loss, [ Target.Module this ], (x, y))
        // An average of the head's weight, kept beside the model and never trained.
        let w = this.Get("head/w")
        let avg = this.Buffer("avg", fun () -> w.detach().clone())
        this.Put("avg", avg * 0.9 + w.detach() * 0.1) |> ignore
        metrics.Loss

/// A module with no methods of its own, for tests that call Get and Buffer on it directly.
type Bare(name: string) =
    inherit Module(name)

/// A moving average of an input, declared a buffer in the constructor.
type Average(?name: string) as this =
    inherit Module(defaultArg name "avg")
    do this.DeclareBuffers("value")
    member this.Update(x: T) =
        let v = this.Get("value", fun () -> torch.zeros_like x)
        this.Put("value", v * 0.9 + x.detach() * 0.1)

let private data () =
    let g = new torch.Generator(7UL)
    torch.randn([| 8L; 5L |], generator = g), torch.randn([| 8L; 2L |], generator = g)

/// The keys a module's parameters are expected to be.
let private parameterKeys =
    [ "model/dense/b"; "model/dense/w"; "model/head/b"; "model/head/w"; "model/norm/offset"; "model/norm/scale"; "model/tnorm/bias"; "model/tnorm/weight" ]

let private gradKeys (model: Mixed) (state: State) (x: T, y: T) =
    let _, (_, _, grads) = Nj.purify (fun xy -> Nj.grad model.Loss [ Target.Module model ] xy) state (x, y)
    State.keys grads

[<Tests>]
let tests =
    testList "parameters" [
        testCase "Target.Module differentiates parameters only: no buffers, optimizer state or integer entries" <| fun () ->
            let model = Mixed()
            let x, y = data ()
            let state = Nj.init 0L model.Train State.empty (x, y)
            Expect.containsAll (State.keys state) [ "model/tnorm/num_batches_tracked"; "model/norm/mean"; "model/avg"; "model/opt/count" ] "every kind is in the state"
            Expect.equal (gradKeys model state (x, y)) parameterKeys "gradient keys"
            Expect.equal (List.ofSeq (model.ParameterKeys state)) parameterKeys "ParameterKeys"
            Expect.equal (State.keys (model.Parameters state)) parameterKeys "Parameters"
            for k in parameterKeys do
                Expect.isTrue (obj.ReferenceEquals((model.Parameters state).[k], state.[k])) (sprintf "%s is the state's tensor" k)
            let kinds = model.EntryKinds state
            Expect.equal kinds.["model/norm/mean"] EntryKind.Buffer "Ninjax BatchNormalization's statistics"
            Expect.equal kinds.["model/norm/var"] EntryKind.Buffer "Ninjax BatchNormalization's statistics"
            Expect.equal kinds.["model/tnorm/running_mean"] EntryKind.Buffer "TorchSharp's buffers"
            Expect.equal kinds.["model/tnorm/num_batches_tracked"] EntryKind.Buffer "TorchSharp's integer buffer"
            Expect.equal kinds.["model/avg"] EntryKind.Buffer "a Buffer"
            Expect.equal kinds.["model/opt/count"] EntryKind.OptimizerState "the optimizer's count"
            Expect.equal kinds.["model/opt/mu/model/dense/w"] EntryKind.OptimizerState "the optimizer's moments"
            Expect.equal kinds.["model/head/w"] EntryKind.Parameter "a parameter of an inline submodule"
            Expect.equal kinds.Count (State.count state) "every entry is under the model"

        testCase "training the whole model moves parameters and statistics, and leaves the average to its own update" <| fun () ->
            let model = Mixed()
            let x, y = data ()
            let s0 = Nj.init 0L model.Train State.empty (x, y)
            let s1, _ = Nj.purifyWith (Options.seeded 0L) model.Train s0 (x, y)
            for k in parameterKeys do
                Expect.isFalse (identical s0.[k] s1.[k]) (sprintf "%s trained" k)
            Expect.isFalse (identical s0.["model/norm/mean"] s1.["model/norm/mean"]) "running mean updated by the forward pass"
            Expect.equal (s1.["model/tnorm/num_batches_tracked"].ToInt64()) 1L "TorchSharp's counter counts the step"
            Expect.equal (s1.["model/opt/count"].ToInt64()) 1L "one optimizer step"
            let expectedAvg = s0.["model/avg"] * 0.9 + s1.["model/head/w"] * 0.1
            expectClose s1.["model/avg"] expectedAvg 1e-6 "the average is updated by Train, not by the optimizer"
            Expect.isFalse (State.containsKey "model/opt/mu/model/avg" s1) "the optimizer holds no moment for the average"

        testCase "kinds hold for a state loaded from a checkpoint or built by hand, before any module ran" <| fun () ->
            let x, y = data ()
            let trained = Nj.init 0L (Mixed().Train) State.empty (x, y)
            let path = Path.Combine(Path.GetTempPath(), sprintf "ninjax-kinds-%O.safetensors" (Guid.NewGuid()))
            try
                Checkpoint.save path (trained, CheckpointMetadata.empty)
                let loaded, _ = Checkpoint.load path
                // A fresh model object in the same process stands in for a new process: nothing ran yet.
                // Everything is declared at construction (BatchNormalization, TorchModule, Optimizer,
                // the model's DeclareBuffers), so the kinds are right at once.
                let fresh = Mixed()
                Expect.equal (List.ofSeq (fresh.ParameterKeys loaded)) parameterKeys "before any call"
                Expect.equal (gradKeys fresh loaded (x, y)) parameterKeys "Target.Module"
                let byHand = State.ofSeq (State.toSeq loaded)
                Expect.equal (List.ofSeq (fresh.ParameterKeys byHand)) parameterKeys "a state built by hand, the same"
                let after, _ = Nj.purifyWith (Options.seeded 1L) fresh.Train loaded (x, y)
                Expect.equal (after.["model/opt/count"].ToInt64()) 1L "a training step runs on the loaded state"
            finally
                File.Delete path

        testCase "a Buffer declared inside the loss is left out of the gradient on the first call" <| fun () ->
            // A user's own normalisation: its running mean is a Buffer read and written in the loss.
            let model = Bare "m"
            let loss (x: T) =
                let scale = model.Get("scale", fun () -> torch.ones 3L)
                let running = model.Buffer("running", fun () -> torch.zeros 3L)
                model.Put("running", running * 0.9 + x.mean([| 0L |]).detach() * 0.1) |> ignore
                ((x - running) * scale).sum()
            let x = torch.randn(4L, 3L)
            // Built by hand, as a loaded checkpoint would be: nothing declared the buffer yet.
            let state = State.ofSeq [ "m/running", torch.zeros 3L; "m/scale", torch.ones 3L ]
            Expect.equal (List.ofSeq (model.ParameterKeys state)) [ "m/running"; "m/scale" ] "undeclared, it looks like a parameter"
            let after, (_, ps, grads) = Nj.purify (fun x -> Nj.grad loss [ Target.Module model ] x) state x
            Expect.equal (State.keys grads) [ "m/scale" ] "the running mean is not differentiated"
            Expect.equal (State.keys ps) [ "m/scale" ] "nor returned as a parameter"
            Expect.isFalse after.["m/running"].requires_grad "the written buffer carries no graph"
            expectClose after.["m/running"] (x.mean([| 0L |]) * 0.1) 1e-6 "and holds its update"
            Expect.equal (List.ofSeq (model.ParameterKeys state)) [ "m/scale" ] "declared from now on"

        testCase "a Buffer read only after the gradient is a parameter until it runs: the error says to declare it" <| fun () ->
            let model = Bare "m"
            let train (x: T) =
                let _, _, grads = Nj.grad (fun (x: T) -> (x * model.Get("w", fun () -> torch.ones 3L)).sum()) [ Target.Module model ] x
                let avg = model.Buffer("avg", fun () -> torch.zeros 3L)
                model.Put("avg", avg * 0.9 + grads.["m/w"] * 0.1) |> ignore
            let x = torch.randn(3L)
            let state = Nj.init 0L train State.empty x
            // The same state in a "new process": a new module object that has not run yet.
            let fresh = Bare "m"
            let train' (x: T) =
                let _, _, grads = Nj.grad (fun (x: T) -> (x * fresh.Get("w", fun () -> torch.ones 3L)).sum()) [ Target.Module fresh ] x
                let avg = fresh.Buffer("avg", fun () -> torch.zeros 3L)
                fresh.Put("avg", avg * 0.9 + grads.["m/w"] * 0.1) |> ignore
            let msg = throwsWith<InvalidOperationException> (fun () -> Nj.purify train' state x |> ignore)
            mentions msg [ "'m/avg'"; "never reads it"; "DeclareBuffers" ]
            Nj.purify train state x |> ignore

        testCase "DeclareBuffers in the constructor holds before any call" <| fun () ->
            let avg = Average()
            let state = State.ofSeq [ "avg/value", torch.zeros 3L ]
            Expect.equal (List.ofSeq (avg.ParameterKeys state)) [] "no parameters"
            Expect.equal (avg.EntryKinds state).["avg/value"] EntryKind.Buffer "a buffer"
            let msg = throwsWith<ArgumentException> (fun () -> Average().DeclareBuffers("a b") |> ignore)
            mentions msg [ "a b" ]

        testCase "the resolution follows new entries and new declarations" <| fun () ->
            let model = Bare "m"
            let a = State.ofSeq [ "m/w", torch.ones 2L; "m/n", torch.tensor 3L ]
            Expect.equal (List.ofSeq (model.ParameterKeys a)) [ "m/w" ] "the integer entry is not a parameter"
            let b, _ = Nj.purifyWith creating (fun () -> model.Get("v", fun () -> torch.ones 2L)) a ()
            Expect.equal (List.ofSeq (model.ParameterKeys b)) [ "m/v"; "m/w" ] "a new entry"
            let c, _ = Nj.purifyWith creating (fun () -> model.Buffer("w", fun () -> torch.ones 2L)) b ()
            Expect.equal (List.ofSeq (model.ParameterKeys c)) [ "m/v" ] "a new declaration"
            Expect.equal (List.ofSeq (model.ParameterKeys b)) [ "m/v" ] "declarations belong to the module, not the state"
            Expect.equal (List.ofSeq (model.ParameterKeys State.empty)) [] "nothing in the state"

        testCase "a module target holding no parameters names what it holds" <| fun () ->
            let model = Mixed()
            let x, y = data ()
            let state = Nj.init 0L model.Train State.empty (x, y)
            let msg =
                throwsWith<ArgumentException> (fun () ->
                    Nj.purify (fun xy -> Nj.grad model.Loss [ Target.Module model.Opt ] xy) state (x, y) |> ignore)
            mentions msg [ "'model/opt'"; "no trainable parameters"; "optimizer state"; "model/opt/count"; "Target.Key \"model/opt/...\"" ]
            let bare = Bare "b"
            let s = State.ofSeq [ "b/n", torch.tensor 1L ]
            let msg = throwsWith<ArgumentException> (fun () -> Nj.purify (fun () -> Nj.grad (fun () -> torch.tensor 0.0f) [ Target.Module bare ] ()) s () |> ignore)
            mentions msg [ "'b'"; "not floating point"; "b/n" ]

        testCase "a Key target still selects every entry under it, and names integer entries" <| fun () ->
            let model = Mixed()
            let x, y = data ()
            let state = Nj.init 0L model.Train State.empty (x, y)
            let msg =
                throwsWith<ArgumentException> (fun () ->
                    Nj.purify (fun xy -> Nj.grad model.Loss [ Target.Key "model/tnorm" ] xy) state (x, y) |> ignore)
            mentions msg [ "model/tnorm/num_batches_tracked"; "not floating point" ]

        testCase "Values keys relative to the module, GetM absolutely" <| fun () ->
            let model = Mixed()
            let x, y = data ()
            let state = Nj.init 0L model.Train State.empty (x, y)
            let _, (values, getm) = Nj.purify (fun () -> model.Norm.Values, model.Norm.GetM()) state ()
            Expect.equal (State.keys values) [ "mean"; "offset"; "scale"; "var" ] "Values: relative"
            Expect.equal (State.keys getm) [ "model/norm/mean"; "model/norm/offset"; "model/norm/scale"; "model/norm/var" ] "GetM: absolute"
            Expect.equal (State.keys (State.under "model/norm" state)) (State.keys getm) "State.under by range"
    ]

[<Tests>]
let summaryTests =
    testList "summary of kinds" [
        testCase "the summary counts trainable parameters apart from buffers, optimizer state and counters" <| fun () ->
            let model = Mixed()
            let x, y = data ()
            let state = Nj.init 0L model.Train State.empty (x, y)
            // dense 5*6 + 6, head 6*2 + 2, norm and tnorm 6 + 6 each.
            let parameters = 36L + 14L + 12L + 12L
            let totals = Summary.totalsOf model state
            Expect.equal totals.Parameters parameters "trainable parameters"
            let elements = State.toSeq state |> Seq.sumBy (fun (_, t) -> t.NumberOfElements)
            Expect.equal totals.Elements elements "all elements"
            // Adam: two moments per parameter, count, learning rate, fingerprint; buffers: 2*6 + 2*6 + 1 + the average (12).
            Expect.equal (elements - parameters) (2L * parameters + 3L + 25L + 12L) "other state"
            let rows = Summary.rowsOf model state
            let entry key =
                rows |> List.pick (function EntryRow(k, _, _, _, kind, t) when k = key -> Some(kind, t) | _ -> None)
            Expect.equal (entry "model/norm/mean") (EntryKind.Buffer, { Entries = 1; Elements = 6L; Parameters = 0L; Bytes = 24L }) "a buffer row"
            Expect.equal (entry "model/dense/w") (EntryKind.Parameter, { Entries = 1; Elements = 30L; Parameters = 30L; Bytes = 120L }) "a parameter row"
            Expect.equal (fst (entry "model/opt/count")) EntryKind.OptimizerState "an optimizer row"
            let optRow = rows |> List.pick (function ModuleRow("model/opt", _, t) -> Some t | _ -> None)
            Expect.equal optRow.Parameters 0L "the optimizer's module row holds no parameters"
            let text = Summary.renderOf model state
            let lines = text.Split '\n'
            Expect.stringContains lines.[0] "Kind" "a kind column"
            Expect.stringContains text (sprintf "%s trainable parameters" (parameters.ToString("N0"))) "the last line counts parameters"
            Expect.stringContains text "in buffers" "and the rest by kind"
            let plain = Summary.render state
            Expect.isFalse (plain.Contains "trainable parameters (") "the plain summary claims no parameter count"
            Expect.stringContains plain "Elements" "it counts elements"

        testCase "entries outside the model are Other in its summary" <| fun () ->
            let model = Bare "m"
            let s = State.ofSeq [ "m/w", torch.ones 3L; "other/w", torch.ones 2L ]
            let rows = Summary.rowsOf model s
            let kinds = rows |> List.choose (function EntryRow(k, _, _, _, kind, _) -> Some(k, kind) | _ -> None)
            Expect.equal kinds [ "m/w", EntryKind.Parameter; "other/w", EntryKind.Other ] "kinds"
            Expect.equal (Summary.totalsOf model s).Parameters 3L "parameters"
    ]
