module Ninjax.Tests.DonationTests

open System
open Expecto
open TorchSharp
open Ninjax
open Ninjax.Tests.Helpers

/// A model whose step keeps a running mean by replacing its entry (a functional write, as
/// BatchNorm keeps its statistics) beside the optimizer's update of the parameters.
type Tracker(name: string) as this =
    inherit Module(name)
    let opt = this.Sub("opt", fun () -> Optimizer(Optax.adamw 0.01))
    let h = this.Sub("h", fun () -> Dense 4)

    member this.Loss(x: torch.Tensor, y: torch.Tensor) = (h.Forward x - y).square().mean ()

    /// One AdamW step; also moves the running mean of the targets' first row.
    member this.Train(x: torch.Tensor, y: torch.Tensor) =
        let mean = this.Get("mean", fun () -> torch.zeros 4L)
        this.Put("mean", mean.mul(0.9.ToScalar()).add (y.[0L].mul (0.1.ToScalar()))) |> ignore
        opt.Minimize(this.Loss, [ Target.Module h ], (x, y)).Loss

    /// A step that returns the running mean as it was before the step replaced it.
    member this.TrainReturningOldMean(x: torch.Tensor, y: torch.Tensor) =
        let before = this.Get("mean", fun () -> torch.zeros 4L)
        this.Train(x, y) |> ignore
        before

    /// A step that returns the weight it read before the optimizer updated it.
    member this.TrainReturningWeight(x: torch.Tensor, y: torch.Tensor) =
        let w = h.Get("w", fun () -> failwith "created at init")
        this.Train(x, y) |> ignore
        w

    /// A step that also keeps the weight it read under a second key.
    member this.TrainKeepingWeight(x: torch.Tensor, y: torch.Tensor) =
        let w = h.Get("w", fun () -> failwith "created at init")
        this.Put("copy", w) |> ignore
        this.Train(x, y)

    /// Keeps the weight under a second key, changing nothing else.
    member this.Alias() =
        this.Put("copy", h.Get("w", fun () -> failwith "created at init")) |> ignore

    /// The prediction, changing nothing.
    member this.Predict(x: torch.Tensor) = h.Forward x

let private batch () =
    torch.manual_seed 7L |> ignore
    torch.randn (16L, 8L), torch.randn (16L, 4L)

let private donating = Options.donating Options.defaults |> Options.named "train"


[<Tests>]
let tests =
    testList "donation" [
        testCase "a donating loop gives the same states and losses, bit for bit, as the plain loop" <| fun () ->
            for name, train, start in
                [
                    let model = Tracker "model"
                    let x, y = batch ()
                    "AdamW and a replaced entry", (fun o -> Nj.purifyWith o model.Train), Nj.init 0L model.Train State.empty (x, y)
                    let quick = ScenarioTests.MyModel(4, name = "model")
                    "the Quickstart model (Adam)", (fun o -> Nj.purifyWith o quick.Train), Nj.init 0L quick.Train State.empty (x, y)
                ] do
                let x, y = batch ()
                let plain = runSteps 12 (train Options.defaults) (copyState start) (x, y)
                let donated = runSteps 12 (train donating) (copyState start) (x, y)
                List.iteri2 (fun i (_, l1) (_, l2) -> expectIdentical l2 l1 (sprintf "%s: loss at step %d" name (i + 1))) plain donated
                expectSameState (fst (List.last donated)) (fst (List.last plain)) (name + ": final state")
                for s, _ in List.take 11 donated do
                    Expect.isTrue s.IsDonated (name + ": every state but the last was handed on")
                let states = donated |> List.map fst
                Expect.equal (Collections.Generic.HashSet<State>(states, HashIdentity.Reference).Count) 12 (name + ": each step returned a new State")
                Expect.isFalse (fst (List.last donated)).IsDonated (name + ": the last state is the caller's")
                for s, _ in plain do
                    Expect.isFalse s.IsDonated (name + ": the plain loop donates nothing")

        testCase "a wrapped TorchSharp module with BatchNorm trains the same donating, with its replaced entries freed" <| fun () ->
            // The wrapped module computes with the state's tensors; donation frees the parameters
            // and running statistics each step replaces, which the module must not hold on to.
            let model = TorchModuleTests.Regressor()
            torch.manual_seed 3L |> ignore
            let x, y = torch.randn (32L, 3L), torch.randn (32L, 1L)
            let start = Nj.init 0L model.Train State.empty (x, y)
            let plain = runSteps 10 (Nj.purify model.Train) (copyState start) (x, y)
            let donatedStart = copyState start
            let weight, mean = donatedStart.["model/enc/0/weight"], donatedStart.["model/enc/1/running_mean"]
            let donated = runSteps 10 (Nj.purifyWith donating model.Train) donatedStart (x, y)
            Expect.isTrue (weight.IsInvalid && mean.IsInvalid) "the first step freed the weight and statistic it replaced"
            List.iteri2 (fun i (_, l1) (_, l2) -> expectIdentical l2 l1 (sprintf "loss at step %d" (i + 1))) plain donated
            expectSameState (fst (List.last donated)) (fst (List.last plain)) "final state"
            let stats = State.keys start |> List.filter (fun k -> k.Contains "running_mean")
            Expect.isNonEmpty stats "the model keeps BatchNorm statistics"

        testCase "the optimizer writes into the donated tensors, and the replaced entry is freed" <| fun () ->
            let model = Tracker "model"
            let x, y = batch ()
            let state = Nj.init 0L model.Train State.empty (x, y)
            let w, mu, count, mean = state.["model/h/w"], state.["model/opt/mu/model/h/w"], state.["model/opt/count"], state.["model/mean"]
            let before = w.clone ()
            let next, _ = (Nj.purifyWith donating model.Train) state (x, y)
            Expect.isTrue (obj.ReferenceEquals(next.["model/h/w"], w)) "the weight was updated in place"
            Expect.isTrue (obj.ReferenceEquals(next.["model/opt/mu/model/h/w"], mu)) "the first moment was updated in place"
            Expect.isTrue (obj.ReferenceEquals(next.["model/opt/count"], count)) "the step count was updated in place"
            Expect.equal (count.item<int64> ()) 1L "the count advanced"
            Expect.isFalse (identical w before) "the weight holds its new value"
            Expect.isTrue mean.IsInvalid "the running mean's old tensor, replaced by a new one, was freed"
            Expect.isFalse next.["model/mean"].IsInvalid "its new tensor lives"

        testCase "a donated state cannot be used again, and the error names the call" <| fun () ->
            let model = Tracker "model"
            let x, y = batch ()
            let state = Nj.init 0L model.Train State.empty (x, y)
            let train = Nj.purifyWith donating model.Train
            let next, _ = train state (x, y)
            mentions (throwsWith<InvalidOperationException> (fun () -> train state (x, y) |> ignore)) [ "donated to train"; "Use the state the call returned" ]
            mentions (throwsWith<InvalidOperationException> (fun () -> state.["model/h/w"] |> ignore)) [ "donated to train" ]
            mentions (throwsWith<InvalidOperationException> (fun () -> State.keys state |> ignore)) [ "donated to train" ]
            Expect.stringContains (string state) "donated to train" "ToString says so instead of raising"
            let after, loss = train next (x, y)
            Expect.isTrue (loss.item<float32> () |> Single.IsFinite) "the returned state trains on"
            Expect.isFalse after.IsDonated "the newest state is usable"

        testCase "a donating call that changes nothing leaves the state usable" <| fun () ->
            let model = Tracker "model"
            let x, y = batch ()
            let state = Nj.init 0L model.Train State.empty (x, y)
            let next, prediction = (Nj.purifyWith donating model.Predict) state x
            Expect.isTrue (obj.ReferenceEquals(next, state)) "the same state comes back"
            Expect.isFalse state.IsDonated "nothing was handed over"
            Expect.equal prediction.shape [| 16L; 4L |] "the prediction"

        testCase "donating the empty state leaves State.empty usable" <| fun () ->
            let model = Tracker "model"
            let x, y = batch ()
            let created, _ = (Nj.purifyWith (donating |> Options.withSeed 0L |> Options.withCreate true) model.Train) State.empty (x, y)
            Expect.isFalse State.empty.IsDonated "the shared empty state was not handed over"
            Expect.equal (State.count State.empty) 0 "and is still empty"
            Expect.isTrue (State.containsKey "model/h/w" created) "the call created its entries"

        testCase "a donating call on State.empty does not block calls on State.empty elsewhere" <| fun () ->
            // State.empty is one object shared by every caller: a donating call that starts from it
            // must not claim it, or every other thread's Nj.init would fail while it runs.
            use started = new Threading.ManualResetEventSlim(false)
            use release = new Threading.ManualResetEventSlim(false)
            let slow () =
                started.Set()
                release.Wait(TimeSpan.FromSeconds 30.0) |> ignore
                Nj.put "x" (torch.ones 1L) |> ignore
            let worker = Threading.Tasks.Task.Run(fun () -> Nj.purifyWith (donating |> Options.withCreate true) slow State.empty () |> fst)
            try
                Expect.isTrue (started.Wait(TimeSpan.FromSeconds 30.0)) "the donating call started"
                let model = Tracker "model"
                let x, y = batch ()
                let state = Nj.init 0L model.Train State.empty (x, y)
                Expect.isTrue (State.containsKey "model/h/w" state) "an init on State.empty ran while the donating call was running"
            finally
                release.Set()
            Expect.isTrue (State.containsKey "x" worker.Result) "the donating call finished"

        testCase "an output that holds a replaced entry keeps it alive with its old value" <| fun () ->
            let model = Tracker "model"
            let x, y = batch ()
            let state = Nj.init 0L model.Train State.empty (x, y)
            let expected = state.["model/mean"].clone ()
            let next, old = (Nj.purifyWith donating model.TrainReturningOldMean) state (x, y)
            Expect.isFalse old.IsInvalid "not freed"
            expectIdentical old expected "the value before the step"
            Expect.isFalse (identical next.["model/mean"] expected) "the state holds the new mean"

        testCase "an output that holds a tensor updated in place is an error naming the entry" <| fun () ->
            let model = Tracker "model"
            let x, y = batch ()
            let state = Nj.init 0L model.Train State.empty (x, y)
            let message = throwsWith<InvalidOperationException> (fun () -> (Nj.purifyWith donating model.TrainReturningWeight) state (x, y) |> ignore)
            mentions message [ "train"; "model/h/w"; "updated in place"; "clone" ]
            Expect.isTrue state.IsDonated "its tensors changed, so the old state cannot be used"
            mentions (throwsWith<InvalidOperationException> (fun () -> state.["model/h/w"] |> ignore)) [ "failed after updating" ]

        testCase "writing a tensor that is then updated in place under a second key is an error naming both" <| fun () ->
            let model = Tracker "model"
            let x, y = batch ()
            let state = Nj.init 0L model.Train State.empty (x, y)
            let train = Nj.purifyWith (donating |> Options.withCreate true) model.TrainKeepingWeight
            mentions (throwsWith<InvalidOperationException> (fun () -> train state (x, y) |> ignore)) [ "model/h/w"; "model/copy"; "share one tensor" ]

        testCase "mayUpdateInPlace is true only for a donated entry's tensor the call owns, outside gradients" <| fun () ->
            // A fresh state each time (a donated one cannot be used again), "b" held under two keys.
            let state () = State.ofSeq [ "a", torch.ones 3L; "b", torch.ones 3L ] |> fun s -> State.add "alias" s.["b"] s
            let ask (key: string) () = Nj.mayUpdateInPlace (Nj.read key)
            Expect.isFalse (snd (Nj.purify (ask "a") (state ()) ())) "not donating: no"
            Expect.isTrue (snd (Nj.purifyWith donating (ask "a") (state ()) ())) "donating, one key: yes"
            Expect.isFalse (snd (Nj.purifyWith donating (ask "b") (state ()) ())) "a tensor under two keys: no"
            Expect.isFalse (snd (Nj.purifyWith (donating |> Options.withModify false) (ask "a") (state ()) ())) "modify off: no"
            let created () = Nj.mayUpdateInPlace (Nj.put "a" (torch.zeros 3L))
            Expect.isFalse (snd (Nj.purifyWith donating created (state ()) ())) "a tensor the call made, not the state's: no"
            let half = State.ofSeq [ "h", torch.ones(3L, dtype = torch.float16) ]
            Expect.isFalse (snd (Nj.purifyWith donating (ask "h") half ())) "float16: no"
            let inGrad () =
                let mutable answer = true
                Nj.grad (fun () -> answer <- Nj.mayUpdateInPlace (Nj.read "b"); Nj.read "a" |> fun t -> t.sum ()) [ Target.Key "a" ] () |> ignore
                answer
            Expect.isFalse (snd (Nj.purifyWith donating inGrad (State.ofSeq [ "a", torch.ones 3L; "b", torch.ones 3L ]) ())) "inside a gradient: no"
            // A granted update counts as a write in place, even before the code makes it.
            let failing () = if Nj.mayUpdateInPlace (Nj.read "a") then failwith "failed after being granted an in-place update"
            let donated = state ()
            Expect.throws (fun () -> Nj.purifyWith donating failing donated () |> ignore) "the call fails"
            Expect.isTrue donated.IsDonated "a call that failed after a granted in-place update marks the state"

        testCase "a tensor held under two keys is neither overwritten nor freed" <| fun () ->
            let model = Tracker "model"
            let x, y = batch ()
            let initial = Nj.init 0L model.Train State.empty (x, y)
            let w = initial.["model/h/w"]
            let before = w.clone ()
            let state = initial |> State.add "snapshot/w" w
            let next, _ = (Nj.purifyWith donating model.Train) state (x, y)
            Expect.isFalse (obj.ReferenceEquals(next.["model/h/w"], w)) "the weight got a new tensor"
            Expect.isTrue (obj.ReferenceEquals(next.["snapshot/w"], w)) "the other key keeps its tensor"
            Expect.isFalse w.IsInvalid "which is not freed"
            expectIdentical w before "and not changed"

        testCase "a donating call hands its count of each tensor's keys on: the next one sees a tensor it stored twice" <| fun () ->
            // A donating call hands the next one its count of the keys that hold each tensor (so
            // that the next needs no pass over the state). A call that stores the weight under a
            // second key must be counted: the next donating call then neither overwrites nor frees
            // that tensor, and updates in place again what is held once.
            let model = Tracker "model"
            let x, y = batch ()
            let train = Nj.purifyWith donating model.Train
            let alias = Nj.purifyWith (donating |> Options.withCreate true) model.Alias
            let warmed, _ = train (Nj.init 0L model.Train State.empty (x, y)) (x, y)
            let aliased, _ = alias warmed ()
            let w = aliased.["model/h/w"]
            let before = w.clone ()
            Expect.isTrue (obj.ReferenceEquals(aliased.["model/copy"], w)) "the weight is stored twice"
            let next, _ = train aliased (x, y)
            Expect.isFalse (obj.ReferenceEquals(next.["model/h/w"], w)) "the weight got a new tensor"
            Expect.isTrue (obj.ReferenceEquals(next.["model/copy"], w)) "the other key keeps its tensor"
            Expect.isFalse w.IsInvalid "which is not freed"
            expectIdentical w before "and not changed"
            let w2 = next.["model/h/w"]
            let after, _ = train next (x, y)
            Expect.isTrue (obj.ReferenceEquals(after.["model/h/w"], w2)) "the new weight, held once, is updated in place"
            Expect.isTrue (obj.ReferenceEquals(after.["model/copy"], w)) "the copy stays"

        testCase "only a top-level call can donate" <| fun () ->
            let model = Tracker "model"
            let x, y = batch ()
            let state = Nj.init 0L model.Train State.empty (x, y)
            let inner = Nj.purifyWith (donating |> Options.nested |> Options.named "inner") model.Train
            let outer = Nj.purifyWith (Options.named "outer" Options.defaults) (fun () -> inner (Nj.state ()) (x, y) |> ignore)
            mentions (throwsWith<InvalidOperationException> (fun () -> outer state () |> ignore)) [ "inner"; "outer"; "top-level" ]
            Expect.isFalse state.IsDonated "the caller's state is untouched"
    ]
