module Ninjax.Tests.GradTests

open System
open System.Collections.Generic
open System.Text.RegularExpressions
open Expecto
open TorchSharp
open Ninjax
open Ninjax.Tests.Helpers

type Quadratic(name: string) =
    inherit Module(name)
    member this.W = this.Get("w", fun () -> vec [ 1f; 2f; 3f ])
    member this.Loss() = this.W.square().sum()
    member this.CountingLoss() =
        let calls = this.Get("calls", fun () -> torch.zeros([||], dtype = torch.int64))
        this.Put("calls", calls + 1L) |> ignore
        this.Loss()
    member this.Step() =
        let loss, ps, gs = Nj.grad this.CountingLoss [ Target.Key(this.Path + "/w") ] ()
        ignore ps
        loss, gs
    member this.GradOfW() =
        let _, _, gs = Nj.grad this.Loss [ Target.Key(this.Path + "/w") ] ()
        gs

let private setup () =
    let q = Quadratic "q"
    let state = Nj.init 0L (fun () -> q.W) State.empty ()
    q, state

[<Tests>]
let tests =
    testList "gradients" [
        testCase "grad of sum of squares is 2w, keyed like the state" <| fun () ->
            let q, state = setup ()
            let _, gs = Nj.purify q.GradOfW state ()
            Expect.equal (State.keys gs) [ "q/w" ] "keys"
            expectIdentical gs.["q/w"] (vec [ 2f; 4f; 6f ]) "2w"

        testCase "writes inside the loss apply once per call (side effects)" <| fun () ->
            let q = Quadratic "q"
            let state = Nj.init 0L q.CountingLoss State.empty ()
            let step =
                Nj.purify (fun () ->
                    let _, _, gs = Nj.grad q.CountingLoss [ Target.Key "q/w" ] ()
                    gs)
            let s1, g1 = step state ()
            let s2, _ = step s1 ()
            let s3, _ = step s2 ()
            Expect.equal ([ s1; s2; s3 ] |> List.map (fun s -> s.["q/calls"].item<int64> ())) [ 1L; 2L; 3L ] "counter counts once per call"
            expectIdentical g1.["q/w"] (vec [ 2f; 4f; 6f ]) "gradient unaffected"
            Expect.isFalse s1.["q/calls"].requires_grad "written values carry no graph"
            Expect.isFalse s1.["q/w"].requires_grad "parameters come back without graph"

        testCase "grad creates the parameters it needs during init (prerun)" <| fun () ->
            let q = Quadratic "fresh"
            let state = Nj.init 0L (fun () -> q.Step()) State.empty ()
            Expect.equal (State.keys state) [ "fresh/calls"; "fresh/w" ] "created by grad's first run"

        testCase "a module target covers all its keys; params are the values before" <| fun () ->
            let q = Quadratic "m"
            let state = Nj.init 0L q.CountingLoss State.empty ()
            let target = Nj.purify (fun () -> Nj.grad q.Loss [ Target.Pattern(Regex "^m/w$") ] ())
            let _, (loss, ps, gs) = target state ()
            expectIdentical loss (scalar 14f) "loss"
            Expect.equal (State.keys ps) [ "m/w" ] "params"
            expectIdentical ps.["m/w"] state.["m/w"] "params are the current values"
            Expect.equal (State.keys gs) (State.keys ps) "grads keyed like params"

        testCase "a target that matches no key is named" <| fun () ->
            let q, state = setup ()
            let f = Nj.purify (fun () -> Nj.grad q.Loss [ Target.Key "q/nothing" ] ())
            let msg = throwsWith<KeyNotFoundException> (fun () -> f state () |> ignore)
            mentions msg [ "q/nothing"; "q/w" ]

        testCase "a target the loss never reads is named" <| fun () ->
            let q, state = setup ()
            let state = State.add "q/unused" (vec [ 1f ]) state
            let f = Nj.purify (fun () -> Nj.grad q.Loss [ Target.Module q ] ())
            let msg = throwsWith<InvalidOperationException> (fun () -> f state () |> ignore)
            mentions msg [ "q/unused"; "never reads"; "q/w" ]

        testCase "an integer target is refused by name; a module target leaves integer entries out" <| fun () ->
            let q = Quadratic "ints"
            let state = Nj.init 0L q.CountingLoss State.empty ()
            let f = Nj.purify (fun () -> Nj.grad q.CountingLoss [ Target.Key "ints/calls" ] ())
            let msg = throwsWith<ArgumentException> (fun () -> f state () |> ignore)
            mentions msg [ "ints/calls"; "Int64" ]
            let _, (_, _, grads) = Nj.purify (fun () -> Nj.grad q.CountingLoss [ Target.Module q ] ()) state ()
            Expect.isFalse (State.containsKey "ints/calls" grads) "the counter is not differentiated"
            Expect.isNonEmpty (State.keys grads) "the parameters are"

        testCase "a non-scalar loss is rejected with its shape" <| fun () ->
            let q, state = setup ()
            let f = Nj.purify (fun () -> Nj.grad (fun () -> q.W * 2.0f) [ Target.Module q ] ())
            let msg = throwsWith<ArgumentException> (fun () -> f state () |> ignore)
            mentions msg [ "scalar"; "[3]" ]

        testCase "gradients with respect to explicit inputs and state together" <| fun () ->
            let q, state = setup ()
            let f =
                Nj.purify (fun () ->
                    Nj.gradFull (fun xs -> (q.W * xs.Head).sum(), "aux") [ Target.Module q ] [ vec [ 10f; 20f; 30f ] ])
            let _, g = f state ()
            expectIdentical g.Grads.["q/w"] (vec [ 10f; 20f; 30f ]) "d/dw = x"
            expectIdentical g.InputGrads.Head (vec [ 1f; 2f; 3f ]) "d/dx = w"
            Expect.equal g.Aux "aux" "aux passes through"
            expectIdentical g.Loss (scalar 140f) "loss"

        testCase "grad of grad: d/dw sum(d/dw sum(w^3)) = 6w" <| fun () ->
            let cube = Quadratic "c"
            let state = Nj.init 0L (fun () -> cube.W) State.empty ()
            let inner () =
                let _, _, gs = Nj.grad (fun () -> cube.W.pow(torch.tensor 3.0f).sum()) [ Target.Key "c/w" ] ()
                gs.["c/w"].sum()
            let f = Nj.purify (fun () -> Nj.grad inner [ Target.Key "c/w" ] ())
            let _, (loss, _, gs) = f state ()
            expectClose loss (scalar 42f) 1e-5 "sum 3w^2 = 3 (1 + 4 + 9)"
            expectClose gs.["c/w"] (vec [ 6f; 12f; 18f ]) 1e-5 "6w"

        testCase "gradAux returns the auxiliary value" <| fun () ->
            let q, state = setup ()
            let f = Nj.purify (fun () -> Nj.gradAux (fun () -> q.Loss(), 7) [ Target.Module q ] ())
            let _, (_, _, _, aux) = f state ()
            Expect.equal aux 7 "aux"

        testCase "the monadic grad agrees with the impure one" <| fun () ->
            let q, state = setup ()
            let prog = Prog.grad (Prog.read "q/w" |> Prog.map (fun w -> w.square().sum())) [ Target.Key "q/w" ]
            let o = Purify.run Options.defaults prog state
            let _, gImpure = Nj.purify q.GradOfW state ()
            let _, _, gs = o.Output
            expectIdentical gs.["q/w"] gImpure.["q/w"] "same gradients"
    ]
