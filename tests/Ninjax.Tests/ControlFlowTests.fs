module Ninjax.Tests.ControlFlowTests

open System
open Expecto
open TorchSharp
open Ninjax
open Ninjax.Tests.Helpers
open Ninjax.Tests.ModuleTests

type Branches(name: string) =
    inherit Module(name)
    member this.Run(useLeft: bool) =
        Nj.cond
            useLeft
            (fun (x: torch.Tensor) ->
                let left = this.Get("left", fun () -> torch.ones 2L)
                this.Put("left", left + 1.0f) |> ignore
                x + left)
            (fun x ->
                let right = this.Get("right", fun () -> torch.zeros 2L)
                this.Put("right", right - 1.0f) |> ignore
                x - right)
            (torch.ones 2L)

type RnnCell(hidden: int, ?name: string) =
    inherit Module(Option.toObj name)
    member this.Step(h: torch.Tensor, x: torch.Tensor) =
        let inputs = x.shape.[x.shape.Length - 1]
        let wx = this.Get("wx", fun () -> Init.glorotUniform inputs (int64 hidden))
        let wh = this.Get("wh", fun () -> Init.glorotUniform (int64 hidden) (int64 hidden))
        let b = this.Get("b", fun () -> torch.zeros(int64 hidden))
        let next = torch.tanh (x.matmul(wx) + h.matmul(wh) + b)
        next, next

type SequenceModel(hidden: int, name: string) as this =
    inherit Module(name)
    let cell = this.Sub("cell", fun () -> RnnCell hidden)
    let readout = this.Sub("out", fun () -> Dense 1)
    member _.Start(xs: torch.Tensor) = torch.zeros(xs.shape.[0], int64 hidden)
    /// The loss through Nj.scan over the time axis (axis 1 of [batch; time; features]).
    member this.Loss(xs: torch.Tensor, y: torch.Tensor) =
        let h, _ = Nj.scanAxis 1 (fun h x -> cell.Step(h, x)) (this.Start xs) xs
        (readout.Forward h - y).square().mean()
    /// The same loss with the loop written out by hand.
    member this.LossUnrolled(xs: torch.Tensor, y: torch.Tensor) =
        let mutable h = this.Start xs
        for t in 0L .. xs.shape.[1] - 1L do
            h <- fst (cell.Step(h, xs.select(1L, t)))
        (readout.Forward h - y).square().mean()
    member this.Train(xs: torch.Tensor, y: torch.Tensor) =
        let loss, ps, gs = Nj.grad this.Loss [ Target.Module this ] (xs, y)
        this.PutM(State.map (fun k p -> p - 0.1f * gs.[k]) ps)
        loss

type Blocks(name: string) as this =
    inherit Module(name)
    let first = this.Sub("first", fun () -> Dense 16)
    let second = this.Sub("second", fun () -> Dense 4)
    member val Calls = 0 with get, set
    member this.Block(xs: torch.Tensor list) =
        this.Calls <- this.Calls + 1
        let noise = torch.rand([| 16L |], generator = Nj.rng ())
        torch.tanh (first.Forward xs.Head) * (1.0f + 0.1f * noise)
    member this.Loss(x: torch.Tensor, checkpointed: bool) =
        let h = if checkpointed then Nj.checkpoint this.Block [ x ] else this.Block [ x ]
        second.Forward(h).square().mean()

let private sequences () =
    let g = new torch.Generator(5UL)
    let xs = torch.randn([| 16L; 6L; 3L |], generator = g)
    let y = xs.sum([| 1L; 2L |]).unsqueeze(1L).tanh()
    xs, y

[<Tests>]
let tests =
    testList "control flow" [
        testCase "cond creates both branches' entries at init and applies only the chosen branch's writes" <| fun () ->
            let m = Branches "br"
            let state = Nj.init 0L m.Run State.empty true
            Expect.equal (State.keys state) [ "br/left"; "br/right" ] "both branches created"
            expectIdentical state.["br/left"] (torch.ones 2L) "init ignores writes"
            let run = Nj.purify m.Run
            let s1, out1 = run state true
            expectIdentical out1 (full [| 2L |] 2.0f) "left output"
            expectIdentical s1.["br/left"] (full [| 2L |] 2.0f) "left written"
            Expect.isTrue (obj.ReferenceEquals(s1.["br/right"], state.["br/right"])) "right untouched"
            let s2, out2 = run state false
            expectIdentical out2 (torch.ones 2L) "right output"
            expectIdentical s2.["br/right"] (full [| 2L |] -1.0f) "right written"
            Expect.isTrue (obj.ReferenceEquals(s2.["br/left"], state.["br/left"])) "left untouched"

        testCase "cond under modify=false fails with the usual message" <| fun () ->
            let m = Branches "ro"
            let state = Nj.init 0L m.Run State.empty true
            let run = Nj.purifyWith (Options.defaults |> Options.withModify false) m.Run
            let msg = throwsWith<InvalidOperationException> (fun () -> run state false |> ignore)
            mentions msg [ "ro/right"; "modify=false" ]

        testCase "scan threads state, trains an RNN cell, and matches the unrolled loop's gradients" <| fun () ->
            let model = SequenceModel(8, "rnn")
            let xs, y = sequences ()
            let state = Nj.init 0L model.Train State.empty (xs, y)
            Expect.equal (State.keys state) [ "rnn/cell/b"; "rnn/cell/wh"; "rnn/cell/wx"; "rnn/out/b"; "rnn/out/w" ] "entries"
            let gradsOf (loss: torch.Tensor * torch.Tensor -> torch.Tensor) =
                snd (Nj.purify (fun () -> let _, _, gs = Nj.grad loss [ Target.Module model ] (xs, y) in gs) state ())
            let viaScan = gradsOf model.Loss
            let unrolled = gradsOf model.LossUnrolled
            for k in State.keys state do
                expectClose viaScan.[k] unrolled.[k] 1e-6 (sprintf "gradient %s" k)
            Expect.isGreaterThan (viaScan.["rnn/cell/wh"].abs().sum().item<float32> ()) 0.0f "gradient reaches the recurrent weights"
            let train = Nj.purify model.Train
            let mutable s = state
            let losses = ResizeArray()
            for _ in 1..30 do
                let next, loss = train s (xs, y)
                s <- next
                losses.Add(loss.item<float32> ())
            Expect.isLessThan losses.[losses.Count - 1] (losses.[0] * 0.7f) (sprintf "loss falls: %A" (List.ofSeq losses))

        testCase "scan stacks outputs along its axis and draws fresh randomness per step" <| fun () ->
            let noise () =
                Nj.scan (fun (c: int) (x: torch.Tensor) -> c + 1, x + torch.rand([| 3L |], generator = Nj.rng ())) 0 (torch.zeros(4L, 3L))
            let run = Nj.purifyWith (Options.seeded 3L) noise
            let _, (steps, ys) = run State.empty ()
            let _, (_, again) = run State.empty ()
            Expect.equal steps 4 "one step per row"
            Expect.equal ys.shape [| 4L; 3L |] "stacked"
            expectIdentical again ys "deterministic for a seed"
            Expect.isFalse (identical (ys.select(0L, 0L)) (ys.select(0L, 1L))) "steps see different randomness"
            let _, (_, t) = Nj.purify (fun () -> Nj.scanAxis 1 (fun c (x: torch.Tensor) -> c, x * 2.0f) () (torch.ones(2L, 5L))) State.empty ()
            Expect.equal t.shape [| 2L; 5L |] "axis 1"

        testCase "scan rejects scalars, bad axes and ragged step outputs" <| fun () ->
            let call f = Nj.purify f State.empty () |> ignore
            let msg = throwsWith<ArgumentException> (fun () -> call (fun () -> Nj.scan (fun c x -> c, x) () (scalar 1f)))
            mentions msg [ "scalar" ]
            let msg = throwsWith<ArgumentOutOfRangeException> (fun () -> call (fun () -> Nj.scanAxis 2 (fun c x -> c, x) () (torch.ones(2L, 2L))))
            mentions msg [ "axis 2"; "[2, 2]" ]
            let ragged (i: int) (x: torch.Tensor) = i + 1, (if i = 0 then x else torch.cat ([| x; x |], 0L))
            let msg = throwsWith<InvalidOperationException> (fun () -> call (fun () -> Nj.scan ragged 0 (torch.ones(3L, 2L))))
            mentions msg [ "step 1"; "[4]"; "[2]" ]

        testCase "whileLoop counts with state and creates its entries at init even when it never loops" <| fun () ->
            let counter = Counter "loop"
            let countTo (limit: int) =
                Nj.whileLoop (fun n -> n < limit) (fun n -> counter.Count() |> ignore; n + 1) 0
            let state = Nj.init 0L countTo State.empty 0
            Expect.equal (State.keys state) [ "loop/count" ] "created though the condition was false"
            let s, steps = Nj.purify countTo state 5
            Expect.equal steps 5 "five iterations"
            Expect.equal (s.["loop/count"].item<int> ()) 5 "state threaded through the loop"
            let frozen = Nj.purifyWith (Options.defaults |> Options.withModify false) countTo
            let msg = throwsWith<InvalidOperationException> (fun () -> frozen state 2 |> ignore)
            mentions msg [ "loop/count"; "modify=false" ]
    
        testCase "checkpoint recomputes activations in the backward pass and gives the same gradients" <| fun () ->
            let m = Blocks "ck"
            let x = torch.randn([| 8L; 5L |], generator = new torch.Generator(1UL))
            let state = Nj.initWith (Options.seeded 0L) m.Loss State.empty (x, true)
            let gradsOf checkpointed =
                let f = Nj.purifyWith (Options.seeded 9L) (fun () -> Nj.gradFull (fun xs -> m.Loss(xs.Head, checkpointed), ()) [ Target.Module m ] [ x ])
                m.Calls <- 0
                let _, g = f state ()
                g, m.Calls
            let plain, plainCalls = gradsOf false
            let ck, ckCalls = gradsOf true
            Expect.equal plainCalls 1 "without checkpoint the block runs once"
            Expect.equal ckCalls 2 "with checkpoint it runs forward, then again in backward"
            expectClose ck.Loss plain.Loss 1e-6 "same loss"
            for k in State.keys plain.Grads do
                expectClose ck.Grads.[k] plain.Grads.[k] 1e-5 (sprintf "gradient %s" k)
            expectClose ck.InputGrads.Head plain.InputGrads.Head 1e-5 "gradient of the explicit input"
            let _, out = Nj.purifyWith (Options.seeded 9L) (fun () -> m.Calls <- 0; m.Loss(x, true)) state ()
            Expect.equal m.Calls 1 "outside a gradient it is a plain call"
            Expect.isFalse out.requires_grad "no graph kept"

        testCase "ninjax test_scan: constants, reading and writing state, a seed per step" <| fun () ->
            let body (carry: torch.Tensor) (x: torch.Tensor) = let c = carry + x in c, c
            let _, (carry, ys) = Nj.purify (fun () -> Nj.scan body (torch.tensor 0L) (torch.tensor [| 1L; 2L; 3L; 4L; 5L |])) State.empty ()
            Expect.equal (carry.item<int64> ()) 15L "carry"
            Expect.equal (ys.data<int64>().ToArray()) [| 1L; 3L; 6L; 10L; 15L |] "ys"
            let v = Variable((fun () -> torch.zeros([||], dtype = torch.int32)), "v")
            let reading () = Nj.scan (fun (c: int) (x: torch.Tensor) -> c + 1, x + v.Read()) 0 (torch.tensor [| 1; 1; 1 |])
            let _, (c, ys) = Nj.purifyWith (Options.defaults |> Options.withCreate true) reading State.empty ()
            Expect.equal c 3 "read_state: carry"
            Expect.equal (ys.data<int>().ToArray()) [| 1; 1; 1 |] "read_state: ys"
            let writing () = Nj.scan (fun (c: int) (x: torch.Tensor) -> let y = x + v.Read() in v.Write y |> ignore; c + 1, y) 0 (torch.tensor [| 1; 1; 1 |])
            let _, (_, ys) = Nj.purifyWith (Options.defaults |> Options.withCreate true) writing State.empty ()
            Expect.equal (ys.data<int>().ToArray()) [| 1; 2; 3 |] "write_state: ys"
            let seeds () = Nj.scan (fun () (_: torch.Tensor) -> (), torch.randint(1000000L, [| 2L |], generator = Nj.rng ())) () (torch.ones 3L)
            let _, (_, keys) = Nj.purifyWith (Options.seeded 0L) seeds State.empty ()
            Expect.equal keys.shape [| 3L; 2L |] "seed: shape"
            for i, j in [ 0L, 1L; 0L, 2L; 1L, 2L ] do
                Expect.isFalse (identical (keys.select(0L, i)) (keys.select(0L, j))) (sprintf "seed: steps %d and %d differ" i j)

        testCase "ninjax test_cond: branches, state, and their own seeds" <| fun () ->
            let _, a = Nj.purify (fun () -> Nj.cond true (fun () -> 12) (fun () -> 42) ()) State.empty ()
            let _, b = Nj.purify (fun () -> Nj.cond false (fun () -> 12) (fun () -> 42) ()) State.empty ()
            Expect.equal (a, b) (12, 42) "basic"
            let v = Variable((fun () -> torch.ones([||], dtype = torch.int32)), "v")
            let w = Variable((fun () -> torch.ones([||], dtype = torch.int32)), "w")
            let program (x: bool) =
                Nj.cond x (fun () -> (v.Read() + w.Read()).item<int> ()) (fun () -> v.Write(torch.tensor 42) |> ignore; 12) ()
            let state = Nj.init 0L program State.empty true
            Expect.equal (State.keys state) [ "v/value"; "w/value" ] "state: init creates both branches' entries"
            let run = Nj.purify program
            let s1, o1 = run state true
            let s2, o2 = run s1 false
            let _, o3 = run s2 true
            Expect.equal [ o1; o2; o3 ] [ 2; 12; 43 ] "state: outputs"
            let draw () = torch.randint(1000000L, [| 2L |], generator = Nj.rng ())
            let seeds (x: bool) = Nj.cond x draw draw ()
            let _, d1 = Nj.purifyWith (Options.seeded 0L) seeds State.empty true
            let _, d2 = Nj.purifyWith (Options.seeded 0L) seeds State.empty false
            Expect.isFalse (identical d1 d2) "seeds: the branches draw differently"

        testCase "scan with reverse loops last to first, keeps the outputs in the order of xs, and the same randomness per step" <| fun () ->
            let cumulative (options: ScanOptions) =
                Nj.scanWith options (fun (c: torch.Tensor) (x: torch.Tensor) -> let c = c + x in c, c) (torch.tensor 0L) (torch.tensor [| 1L; 2L; 3L; 4L; 5L |])
            let _, (carry, ys) = Nj.purify (fun () -> cumulative (ScanOptions.defaults |> ScanOptions.reversed)) State.empty ()
            Expect.equal (carry.item<int64> ()) 15L "carry"
            Expect.equal (ys.data<int64>().ToArray()) [| 15L; 14L; 12L; 9L; 5L |] "ys in the order of xs (JAX's reverse)"
            let noise (options: ScanOptions) = Nj.scanWith options (fun () (x: torch.Tensor) -> (), x + torch.rand([| 2L |], generator = Nj.rng ())) () (torch.zeros(4L, 2L))
            let _, (_, forward) = Nj.purifyWith (Options.seeded 5L) noise State.empty ScanOptions.defaults
            let _, (_, backward) = Nj.purifyWith (Options.seeded 5L) noise State.empty (ScanOptions.defaults |> ScanOptions.reversed)
            expectIdentical backward forward "step i draws the same whichever direction"
            // State written by the steps sees them in reverse order.
            let v = Variable((fun () -> torch.zeros([||], dtype = torch.int64)), "order")
            let order () =
                Nj.scanWith (ScanOptions.defaults |> ScanOptions.reversed) (fun () (x: torch.Tensor) -> v.Write(v.Read() * 10L + x) |> ignore, x) () (torch.tensor [| 1L; 2L; 3L |])
                |> ignore
                v.Read()
            let _, last = Nj.purifyWith (Options.defaults |> Options.withCreate true) order State.empty ()
            Expect.equal (last.item<int64> ()) 321L "the steps ran 3, 2, 1"

        testCase "scanLength loops without xs, giving the step its index, forwards or backwards" <| fun () ->
            let indices (options: ScanOptions) =
                Nj.scanLength options 4L (fun (seen: int64 list) (i: int64) -> seen @ [ i ], torch.tensor (float32 i)) []
            let _, (seen, ys) = Nj.purify (fun () -> indices ScanOptions.defaults) State.empty ()
            Expect.equal seen [ 0L; 1L; 2L; 3L ] "forward order"
            expectIdentical ys (vec [ 0f; 1f; 2f; 3f ]) "stacked by index"
            let _, (seen, ys) = Nj.purify (fun () -> indices (ScanOptions.defaults |> ScanOptions.reversed)) State.empty ()
            Expect.equal seen [ 3L; 2L; 1L; 0L ] "backward order"
            expectIdentical ys (vec [ 0f; 1f; 2f; 3f ]) "still stacked by index"
            let _, (_, t) = Nj.purify (fun () -> Nj.scanLength (ScanOptions.defaults |> ScanOptions.alongAxis 1) 3L (fun () _ -> (), torch.ones 2L) ()) State.empty ()
            Expect.equal t.shape [| 2L; 3L |] "stacked along axis 1"
            let msg = throwsWith<ArgumentOutOfRangeException> (fun () -> Nj.purify (fun () -> Nj.scanLength ScanOptions.defaults 0L (fun () _ -> (), torch.ones 1L) ()) State.empty () |> ignore)
            mentions msg [ "at least one step" ]
            // The monad and the impure API agree.
            let o = Purify.run (Options.seeded 1L) (Prog.scanLength ScanOptions.defaults 3L (fun () i -> Prog.rng |> Prog.map (fun g -> (), torch.rand([| 2L |], generator = g) + float32 i)) ()) State.empty
            let _, (_, impure) = Nj.purifyWith (Options.seeded 1L) (fun () -> Nj.scanLength ScanOptions.defaults 3L (fun () i -> (), torch.rand([| 2L |], generator = Nj.rng ()) + float32 i) ()) State.empty ()
            expectIdentical (snd o.Output) impure "Prog.scanLength and Nj.scanLength"

        testCase "whileLoop gives every iteration fresh randomness, the same in creating and plain calls" <| fun () ->
            let draws () =
                Nj.whileLoop (fun (xs: torch.Tensor list) -> xs.Length < 3) (fun xs -> xs @ [ torch.rand([| 2L |], generator = Nj.rng ()) ]) []
                |> torch.stack
            let _, a = Nj.purifyWith (Options.seeded 4L) draws State.empty ()
            let _, b = Nj.purifyWith (Options.seeded 4L |> Options.withCreate true) draws State.empty ()
            expectIdentical b a "creating (which explores the body first) does not shift the draws"
            Expect.isFalse (identical (a.select(0L, 0L)) (a.select(0L, 1L))) "iterations 0 and 1 differ"
            Expect.isFalse (identical (a.select(0L, 1L)) (a.select(0L, 2L))) "iterations 1 and 2 differ"
            let _, c = Nj.purifyWith (Options.seeded 5L) draws State.empty ()
            Expect.isFalse (identical a c) "another seed, other draws"
            // What runs after the loop draws the same however many iterations ran.
            let after (n: int) =
                Nj.whileLoop (fun i -> i < n) (fun i -> torch.rand([| 1L |], generator = Nj.rng ()) |> ignore; i + 1) 0 |> ignore
                torch.rand([| 3L |], generator = Nj.rng ())
            let _, after1 = Nj.purifyWith (Options.seeded 6L) after State.empty 1
            let _, after4 = Nj.purifyWith (Options.seeded 6L) after State.empty 4
            expectIdentical after4 after1 "the loop takes one draw of the call's counter"
    ]
