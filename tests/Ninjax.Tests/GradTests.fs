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

/// ninjax's test_side_effect_return: a loss that writes its own target and returns a constant.
type SelfWriting(name: string) =
    inherit Module(name)
    member this.Loss() =
        this.Value("value", fun () -> torch.zeros([||])) |> ignore
        this.Write("value", this.Read "value" + 1.0f) |> ignore
        torch.tensor 0.0f
    member this.Update() =
        let key = this.Path + "/value"
        let loss, ps, gs = Nj.grad this.Loss [ Target.Key key ] ()
        this.Write("value", ps.[key] - gs.[key] * 0.1f) |> ignore
        loss

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

        testCase "a module target covers all its keys; params are the current values" <| fun () ->
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

        testCase "a loss that does not depend on the targets has zero gradients (JAX, ninjax)" <| fun () ->
            let q, state = setup ()
            let constant () =
                q.W |> ignore
                torch.tensor 3.0f
            let detached () = q.W.detach().square().sum()
            for name, loss in [ "a constant", constant; "a detached value", detached ] do
                let _, (l, ps, gs) = Nj.purify (fun () -> Nj.grad loss [ Target.Module q ] ()) state ()
                expectIdentical gs.["q/w"] (vec [ 0f; 0f; 0f ]) (name + ": zero gradient")
                Expect.equal (State.keys ps) [ "q/w" ] (name + ": params")
                Expect.isFalse l.requires_grad (name + ": loss without graph")
            // The same for an explicit input the loss ignores.
            let _, g = Nj.purify (fun () -> Nj.gradFull (fun _ -> q.Loss(), ()) [] [ vec [ 1f; 2f ] ]) state ()
            expectIdentical g.InputGrads.Head (vec [ 0f; 0f ]) "zero gradient for an unused input"

        testCase "an integer loss is refused with its dtype" <| fun () ->
            let q, state = setup ()
            let f = Nj.purify (fun () -> Nj.grad (fun () -> q.W.sum().to_type(torch.int64)) [ Target.Module q ] ())
            let msg = throwsWith<ArgumentException> (fun () -> f state () |> ignore)
            mentions msg [ "floating-point loss"; "Int64" ]

        testCase "params are the targets as the function left them (ninjax 3.6)" <| fun () ->
            // The loss doubles w and reads the old value: the gradient is taken at the old value,
            // params hold the new one, so params - lr * grads keeps the write.
            let m = Quadratic "d"
            let state = Nj.init 0L (fun () -> m.W) State.empty ()
            let loss () =
                let w = m.W
                m.Put("w", w.detach() * 2.0f) |> ignore
                w.square().sum()
            let _, (_, ps, gs) = Nj.purify (fun () -> Nj.grad loss [ Target.Key "d/w" ] ()) state ()
            expectIdentical ps.["d/w"] (vec [ 2f; 4f; 6f ]) "params after the write"
            expectIdentical gs.["d/w"] (vec [ 2f; 4f; 6f ]) "gradient at the value read"
            // Targets the function does not write come back as the very tensors of the state.
            let q, state = setup ()
            let _, (_, ps, _) = Nj.purify (fun () -> Nj.grad q.Loss [ Target.Module q ] ()) state ()
            Expect.isTrue (obj.ReferenceEquals(ps.["q/w"], state.["q/w"])) "unwritten params are the state's tensors"

        testCase "ninjax test_side_effect_return: params - lr * grads keeps the loss's write" <| fun () ->
            let m = SelfWriting "module"
            let state = Nj.init 0L m.Update State.empty ()
            expectIdentical state.["module/value"] (torch.zeros([||])) "init leaves the value at zero"
            let update = Nj.purify m.Update
            let mutable s = state
            for count in 1..3 do
                let next, _ = update s ()
                s <- next
                expectIdentical s.["module/value"] (torch.tensor (float32 count)) (sprintf "after %d updates" count)

        testCase "ninjax test_side_effect_variable: a counter in the loss counts calls" <| fun () ->
            let counter = Variable((fun () -> torch.zeros([||], dtype = torch.int64)), "counter")
            let w = Variable((fun () -> torch.tensor 0.5f), "w")
            let program (x: torch.Tensor) =
                let forward (x: torch.Tensor) =
                    counter.Write(counter.Read() + 1L) |> ignore
                    x * w.Read()
                Nj.grad forward [ Target.Module w ] x |> ignore
                counter.Read()
            let f = Nj.purifyWith (Options.defaults |> Options.withCreate true) program
            let mutable s = State.empty
            for index in 1L..3L do
                let next, value = f s (torch.tensor 2.0f)
                s <- next
                Expect.equal (value.item<int64> ()) index "the counter"

        testCase "ninjax test_create_state_wrt_modules: grad creates its target in a creating call" <| fun () ->
            let w = Variable((fun () -> torch.tensor 0.5f), "w")
            let program (x: torch.Tensor) = Nj.grad (fun (x: torch.Tensor) -> x * w.Read()) [ Target.Module w ] x
            let state, (y, ps, gs) = Nj.purifyWith (Options.defaults |> Options.withCreate true) program State.empty (torch.tensor 2.0f)
            expectIdentical y (torch.tensor 1.0f) "y"
            expectIdentical state.["w/value"] (torch.tensor 0.5f) "state"
            expectIdentical ps.["w/value"] (torch.tensor 0.5f) "params"
            expectIdentical gs.["w/value"] (torch.tensor 2.0f) "grads"

        testCase "ninjax test_nested_create: a variable made in cond inside grad has zero gradient on the branch not taken" <| fun () ->
            let program (a: bool, b: float32) =
                let b = torch.tensor b
                let forward (a: bool, b: torch.Tensor) =
                    let onTrue (_: torch.Tensor) = Variable((fun () -> torch.tensor 1.0f), "w").Read()
                    let onFalse (b: torch.Tensor) = b
                    Nj.cond a onTrue onFalse b
                Nj.grad forward [ Target.Key "w/value" ] (a, b)
            let state = Nj.init 0L program State.empty (false, 0f)
            Expect.equal (State.keys state) [ "w/value" ] "init creates both branches' entries"
            let f = Nj.purify program
            let _, (y, ws, dw) = f state (true, -12f)
            expectIdentical y (torch.tensor 1.0f) "branch taken: y"
            expectIdentical ws.["w/value"] (torch.tensor 1.0f) "branch taken: params"
            expectIdentical dw.["w/value"] (torch.tensor 1.0f) "branch taken: gradient"
            let _, (y, ws, dw) = f state (false, 42f)
            expectIdentical y (torch.tensor 42.0f) "branch not taken: y"
            expectIdentical ws.["w/value"] (torch.tensor 1.0f) "branch not taken: params"
            expectIdentical dw.["w/value"] (torch.tensor 0.0f) "branch not taken: zero gradient"

        testCase "gradients with respect to arguments by position (ninjax's grad(f, [0, 1]))" <| fun () ->
            let x, y, z = vec [ 1f; 2f ], vec [ 3f; 4f ], vec [ 5f; 6f ]
            let loss (x: torch.Tensor, y: torch.Tensor, z: torch.Tensor) = (x * y * z).sum()
            let run argnums = snd (Nj.purify (fun () -> Nj.gradArgs argnums loss (x, y, z)) State.empty ())
            let l, selected, grads = run [ 0; 2 ]
            expectIdentical l (scalar 63f) "loss"
            Expect.isTrue (obj.ReferenceEquals(selected.[0], x) && obj.ReferenceEquals(selected.[1], z)) "the arguments at those positions"
            expectIdentical grads.[0] (y * z) "d/dx = y z"
            expectIdentical grads.[1] (x * y) "d/dz = x y"
            let _, _, grads = run [ 1 ]
            expectIdentical grads.Head (x * z) "d/dy alone"
            // A single tensor argument is position 0; a struct tuple numbers like a tuple; other
            // elements may be anything.
            let _, (_, _, g) = Nj.purify (fun () -> Nj.gradArgs [ 0 ] (fun (t: torch.Tensor) -> t.square().sum()) x) State.empty ()
            expectIdentical g.Head (vec [ 2f; 4f ]) "a single tensor"
            let _, (_, _, g) = Nj.purify (fun () -> Nj.gradArgs [ 0 ] (fun struct (t: torch.Tensor, k: int) -> (t * float32 k).sum()) (struct (x, 3))) State.empty ()
            expectIdentical g.Head (vec [ 3f; 3f ]) "a struct tuple with a non-tensor element"
            // Gradients by position reach the state the loss reads too, as values.
            let q, state = setup ()
            let _, (_, _, g) = Nj.purify (fun () -> Nj.gradArgs [ 0 ] (fun (t: torch.Tensor) -> (t * q.W).sum()) (vec [ 1f; 1f; 1f ])) state ()
            expectIdentical g.Head (vec [ 1f; 2f; 3f ]) "d/dt = w"

        testCase "argument positions that are out of range, repeated or not tensors are named" <| fun () ->
            let x = vec [ 1f ]
            let call (f: unit -> 'T) = Nj.purify f State.empty () |> ignore
            let msg = throwsWith<ArgumentOutOfRangeException> (fun () -> call (fun () -> Nj.gradArgs [ 2 ] (fun (a: torch.Tensor, b: torch.Tensor) -> (a * b).sum()) (x, x)))
            mentions msg [ "position 2"; "2 arguments" ]
            let msg = throwsWith<ArgumentException> (fun () -> call (fun () -> Nj.gradArgs [ 1 ] (fun (a: torch.Tensor, k: int) -> a.sum() * float32 k) (x, 3)))
            mentions msg [ "Argument 1"; "Int32"; "not a tensor" ]
            let msg = throwsWith<ArgumentException> (fun () -> call (fun () -> Nj.gradArgs [ 0; 0 ] (fun (a: torch.Tensor) -> a.sum()) x))
            mentions msg [ "repeat" ]
            let msg = throwsWith<ArgumentException> (fun () -> call (fun () -> Nj.gradArgs [ 0 ] (fun (a: torch.Tensor list) -> a.Head.sum()) [ x ]))
            mentions msg [ "Nj.gradArgs"; "FSharpList"; "Nj.gradFull" ]

        testCase "the monadic gradArgs agrees with the impure one" <| fun () ->
            let x, y = vec [ 1f; 2f ], vec [ 3f; 5f ]
            let prog = Prog.gradArgs [ 1 ] (fun (a: torch.Tensor, b: torch.Tensor) -> Prog.ret ((a * b.square()).sum())) (x, y)
            let o = Purify.run Options.defaults prog State.empty
            let _, (_, _, gImpure) = Nj.purify (fun () -> Nj.gradArgs [ 1 ] (fun (a: torch.Tensor, b: torch.Tensor) -> (a * b.square()).sum()) (x, y)) State.empty ()
            let _, _, gs = o.Output
            expectIdentical gs.Head gImpure.Head "same gradients"
            expectIdentical gs.Head (vec [ 6f; 20f ]) "2 a b"
    ]
