module Ninjax.Tests.ScenarioTests

open System
open System.Threading.Tasks
open Expecto
open TorchSharp
open Ninjax
open Ninjax.Tests.Helpers

/// The seed README's Quickstart model, written as an F# user would.
type MyModel(size: int, ?lr: float, ?name: string) as this =
    inherit Module(defaultArg name "model")
    let lr = defaultArg lr 0.01
    let opt = this.Sub("opt", fun () -> Optimizer(Optax.adam lr))
    let h1 = this.Sub("h1", fun () -> Dense 128)
    let h2 = this.Sub("h2", fun () -> Dense 128)

    member this.Predict(x: torch.Tensor) =
        let x = torch.nn.functional.relu (h1.Forward x)
        let x = torch.nn.functional.relu (h2.Forward x)
        let x = this.Sub("h3", fun () -> Dense(size, useBias = false)).Forward x
        x + this.Get("bias", fun () -> torch.zeros(int64 size))

    member this.Loss(x: torch.Tensor, y: torch.Tensor) = (this.Predict x - y).square().mean()

    /// The parameters the optimizer updates.
    member this.Targets = [ Target.Module h1; Target.Module h2; Target.Key(this.Path + "/h3"); Target.Key(this.Path + "/bias") ]

    /// One Adam step on chosen targets; returns the optimizer's metrics.
    member this.StepOn(targets: Target list, x: torch.Tensor, y: torch.Tensor) = opt.Minimize(this.Loss, targets, (x, y))

    /// One Adam step on the model's parameters; returns the optimizer's metrics.
    member this.Step(x: torch.Tensor, y: torch.Tensor) = this.StepOn(this.Targets, x, y)

    /// One Adam step whose loss also returns the prediction's shape.
    member this.StepAux(x: torch.Tensor, y: torch.Tensor) =
        opt.MinimizeAux((fun (x: torch.Tensor, y: torch.Tensor) -> let p = this.Predict x in (p - y).square().mean (), p.shape), this.Targets, (x, y))

    /// One Adam step; returns the loss, as the seed's train method does.
    member this.Train(x: torch.Tensor, y: torch.Tensor) = this.Step(x, y).Loss

/// A plain class as a C# user would return one, with a cycle back to itself.
type Pair(a: torch.Tensor, b: torch.Tensor) =
    member _.A = a
    member _.B = b
    member this.Self = this

[<Tests>]
let tests =
    testList "scenarios" [
        testCase "quickstart: bias is zero after init and the loss falls over 10 steps" <| fun () ->
            let model = MyModel(3, lr = 0.01)
            let x = torch.ones(64L, 32L)
            let y = torch.ones(64L, 3L)
            let state = Nj.init 0L model.Train State.empty (x, y)
            expectIdentical state.["model/bias"] (torch.zeros 3L) "bias zeros"
            Expect.equal
                (State.keys state |> List.filter (fun k -> not (k.StartsWith "model/opt/")))
                [ "model/bias"; "model/h1/b"; "model/h1/w"; "model/h2/b"; "model/h2/w"; "model/h3/w" ]
                "entries"
            let train = Nj.purify model.Train
            let losses =
                runSteps 10 train state (x, y) |> List.map (fun (_, l) -> l.item<float32> ())
            Expect.isLessThan (List.last losses) (List.head losses * 0.1f) (sprintf "loss falls: %A" losses)
            Expect.isTrue (List.tail losses |> List.forall (fun l -> l < List.head losses)) (sprintf "every step below the first: %A" losses)

        testCase "the same seed gives bit-identical parameters, another seed different ones" <| fun () ->
            let model = MyModel(3)
            let x = torch.ones(4L, 5L)
            let y = torch.ones(4L, 3L)
            let a = Nj.init 7L model.Train State.empty (x, y)
            let b = Nj.init 7L model.Train State.empty (x, y)
            let c = Nj.init 8L model.Train State.empty (x, y)
            expectSameState a b "same seed"
            Expect.isFalse (identical a.["model/h1/w"] c.["model/h1/w"]) "different seed"

        testCase "parallel purified calls from 8 threads equal the serial results" <| fun () ->
            let model = MyModel(3)
            let x = torch.ones(8L, 6L)
            let ys = [| for i in 0..7 -> full [| 8L; 3L |] (float32 i) |]
            let state = Nj.init 0L model.Train State.empty (x, ys.[0])
            let train = Nj.purify model.Train
            let serial = ys |> Array.map (fun y -> train state (x, y))
            let inParallel = Task.WhenAll([| for y in ys -> Task.Run(fun () -> train state (x, y)) |]).Result
            for i in 0..7 do
                expectIdentical (snd inParallel.[i]) (snd serial.[i]) (sprintf "loss %d" i)
                expectSameState (fst inParallel.[i]) (fst serial.[i]) (sprintf "state %d" i)

        testCase "intermediates are freed; outputs and new entries survive" <| fun () ->
            let model = MyModel(3)
            let x = torch.ones(4L, 5L)
            let y = torch.ones(4L, 3L)
            let state = Nj.init 0L model.Train State.empty (x, y)
            let train = Nj.purify model.Train
            let s1, loss = train state (x, y)
            Expect.isFalse loss.IsInvalid "output alive"
            for k in State.keys s1 do
                Expect.isFalse s1.[k].IsInvalid (sprintf "entry %s alive" k)
            for k in State.keys state do
                Expect.isFalse state.[k].IsInvalid (sprintf "input entry %s alive" k)
            use scope = torch.NewDisposeScope()
            let before = scope.DisposablesCount
            train s1 (x, y) |> ignore
            // Only the survivors reach the caller's scope: the loss and every entry a step rewrites
            // (all but the optimizer's fingerprint of its targets).
            Expect.equal (scope.DisposablesCount - before) (State.count s1 - 1 + 1) "survivors only"
    
        testCase "tensors inside a plain class returned from a call survive it" <| fun () ->
            let _, pair = Nj.purify (fun () -> Pair(torch.ones 2L * 2.0f, torch.ones 3L * 3.0f)) State.empty ()
            Expect.isFalse pair.A.IsInvalid "first alive"
            Expect.isFalse pair.B.IsInvalid "second alive"
            expectIdentical pair.B (full [| 3L |] 3.0f) "value intact"
    ]
