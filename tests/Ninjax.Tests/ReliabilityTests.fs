/// Issue 12: no user mistake kills the process, no failure leaves a half-changed state, no
/// corrupted checkpoint loads. Checks that could end the process if they regressed run in a
/// child process (this exe with --reliability-child), so the test run survives them.
module Ninjax.Tests.ReliabilityTests

open System
open System.Diagnostics
open System.IO
open System.Threading
open System.Threading.Tasks
open Expecto
open TorchSharp
open Ninjax
open Ninjax.Tests.Helpers

let private named (name: string) = Options.defaults |> Options.named name

let private donatingAs (name: string) = Options.defaults |> Options.donating |> Options.named name

/// A small state: a weight the losses differentiate and a scale they only read.
let private smallState () = State.ofSeq [ "model/w", vec [ 1.0f; 2.0f; 3.0f ]; "model/scale", vec [ 2.0f; 2.0f; 2.0f ] ]

/// Runs f and returns the exception it raised (failing when it raised none).
let private raised (f: unit -> unit) : exn =
    try
        f ()
        failtest "Expected an exception, but nothing was thrown."
    with
    | :? AssertException -> reraise ()
    | e -> e

/// glibc's heap statistics (mallinfo(3)), for the heap tuning's check.
module private HeapInfo =
    [<Struct; Runtime.InteropServices.StructLayout(Runtime.InteropServices.LayoutKind.Sequential)>]
    type MallInfo2 =
        val arena: unativeint
        val ordblks: unativeint
        val smblks: unativeint
        val hblks: unativeint
        val hblkhd: unativeint
        val usmblks: unativeint
        val fsmblks: unativeint
        val uordblks: unativeint
        val fordblks: unativeint
        /// The free space at the top of the main heap, which glibc could give back.
        val keepcost: unativeint

    [<Runtime.InteropServices.DllImport("libc", ExactSpelling = true)>]
    extern MallInfo2 mallinfo2()

// ------------------------------------------------------------------------------------------
// The child process: scenarios that used to abort the process (exit 134). Each prints a line
// starting with "ok" or "FAIL"; the parent checks the lines and the exit code.

let private scenario (name: string) (f: unit -> string option) =
    try
        match f () with
        | None -> printfn "ok %s" name
        | Some why -> printfn "FAIL %s: %s" name why
    with e -> printfn "FAIL %s: unexpected %s: %s" name (e.GetType().Name) e.Message

/// The scenarios of issue 12 item 1 (process aborts), run in a child process.
let child (group: string) : int =
    torch.set_num_threads 1
    match group with
    | "autograd" ->
        scenario "an autograd error in Nj.grad raises, names the call, and leaves the state" (fun () ->
            let state = smallState ()
            let before = copyState state
            let loss (x: torch.Tensor) =
                let h = (Nj.read "model/w" * x).exp ()
                let l = h.sum ()
                h.mul_ (2.0.ToScalar()) |> ignore // exp's backward needs h as it was
                l
            let f = Nj.purifyWith (named "train") (fun x -> Nj.grad loss [ Target.Key "model/w" ] x)
            match raised (fun () -> f state (torch.ones 3L) |> ignore) with
            | :? InvalidOperationException as e when e.Message.Contains "train" && e.Message.Contains "in place" && not (isNull e.InnerException) ->
                if State.keys state = State.keys before && State.keys state |> List.forall (fun k -> identical state.[k] before.[k]) then None
                else Some "the caller's state changed"
            | e -> Some(sprintf "%s: %s" (e.GetType().Name) e.Message))
        scenario "an entry changed in place after the loss used it is named" (fun () ->
            let state = smallState ()
            let loss (x: torch.Tensor) =
                let s = Nj.read "model/scale"
                let l = (Nj.read "model/w" * s * x).sum ()
                s.mul_ (3.0.ToScalar()) |> ignore
                l
            let f = Nj.purifyWith (named "train") (fun x -> Nj.grad loss [ Target.Key "model/w" ] x)
            match raised (fun () -> f state (torch.ones 3L) |> ignore) with
            | :? InvalidOperationException as e when e.Message.Contains "'model/scale'" -> None
            | e -> Some(sprintf "%s: %s" (e.GetType().Name) e.Message))
        scenario "a function that raises while Nj.checkpoint recomputes it raises from Nj.grad" (fun () ->
            let state = smallState ()
            let before = copyState state
            let mutable calls = 0
            let block (xs: torch.Tensor list) =
                calls <- calls + 1
                if calls > 1 then invalidOp "recomputation failed on purpose"
                (Nj.read "model/w" * xs.Head).tanh().sum ()
            let loss (x: torch.Tensor) = Nj.checkpoint block [ x ]
            let f = Nj.purifyWith (named "train") (fun x -> Nj.grad loss [ Target.Key "model/w" ] x)
            match raised (fun () -> f state (torch.ones 3L) |> ignore) with
            | :? InvalidOperationException as e when
                e.Message.Contains "Nj.checkpoint" && e.Message.Contains "recomputation failed on purpose" && e.Message.Contains "train" ->
                if State.keys state |> List.forall (fun k -> identical state.[k] before.[k]) then None
                else Some "the caller's state changed"
            | e -> Some(sprintf "%s: %s" (e.GetType().Name) e.Message))
        scenario "the same failure under the user's own backward() raises instead of ending the process" (fun () ->
            let state = smallState ()
            let mutable calls = 0
            let block (xs: torch.Tensor list) =
                calls <- calls + 1
                if calls > 1 then invalidOp "recomputation failed on purpose"
                (Nj.read "model/w" * xs.Head).sum ()
            let f = Nj.purifyWith (named "forward") (fun (x: torch.Tensor) -> Nj.checkpoint block [ x ])
            let x = torch.ones(3L).requires_grad_ true
            let _, out = f state x
            match raised (fun () -> out.backward ()) with
            | :? Runtime.InteropServices.ExternalException -> None
            | e -> Some(sprintf "%s: %s" (e.GetType().Name) e.Message))
        scenario "grads of grads still work through backward" (fun () ->
            let state = State.ofSeq [ "w", vec [ 1.0f; 2.0f ] ]
            let inner (x: torch.Tensor) = (Nj.read "w" * Nj.read "w" * Nj.read "w" * x).sum ()
            let outer (x: torch.Tensor) =
                let _, _, g = Nj.grad inner [ Target.Key "w" ] x
                g.["w"].sum ()
            let f = Nj.purify (fun x -> Nj.grad outer [ Target.Key "w" ] x)
            let _, (_, _, g2) = f state (torch.ones 2L)
            // d/dw sum(3 w^2) = 6 w
            if identical g2.["w"] (vec [ 6.0f; 12.0f ]) then None else Some(sprintf "second derivative %A" (values g2.["w"])))
        0
    | "libtorch" ->
        // Runs a purified call and prints what the libtorch check said.
        try
            let f = Nj.purify (fun (x: torch.Tensor) -> x + 1.0f)
            f State.empty (torch.ones 1L) |> ignore
            printfn "no error"
            0
        with e ->
            printfn "%s: %s" (e.GetType().Name) e.Message
            3
    | "heap" ->
        // Frees what a step of 1 MB blocks made, as a purified call frees its intermediates, and
        // prints how much free memory glibc kept mapped at the top of the heap.
        let f = Nj.purify (fun (x: torch.Tensor) -> x + 1.0f)
        f State.empty (torch.ones 1L) |> ignore
        printfn "tuning: %A" (NativeHeap.status ())
        // One 4 MB block first: freeing it raises glibc's adaptive thresholds (mmap 4 MB, trim
        // 8 MB), so the 1 MB blocks come from the heap when the tuning is off too.
        (torch.empty [| 1048576L |]).Dispose()
        let blocks = [ for _ in 1..24 -> torch.empty [| 262144L |] ]
        for b in blocks do
            b.Dispose()
        printfn "kept: %d" (HeapInfo.mallinfo2 ()).keepcost
        0
    | "mkl" | "mkl-after-product" ->
        // Makes the process's tunings (after a product of its own in the second group), prints
        // what they came to, and checks a product against float64 arithmetic.
        torch.set_num_threads 1
        torch.manual_seed 3L |> ignore
        let a = torch.randn (128L, 256L)
        let b = torch.randn (256L, 96L)
        if group = "mkl-after-product" then (a.matmul b).Dispose()
        Tuning.apply ()
        for line in Tuning.describe () do
            printfn "tuning: %s" line
        let product = a.matmul b
        let exact = a.to_type(torch.float64).matmul(b.to_type torch.float64)
        let error = (product.to_type torch.float64 - exact).abs().max().ToDouble()
        printfn "product error: %g (largest entry %g)" error (exact.abs().max().ToDouble())
        0
    | other ->
        eprintfn "unknown child group %s" other
        2

/// Runs this test exe as a child in a scenario group; returns its exit code and output.
let private runChild (group: string) (environment: (string * string) list) : int * string =
    let exe, prefix = CheckpointTests.selfCommand ()
    let psi = ProcessStartInfo(exe)
    for a in prefix @ [ "--reliability-child"; group ] do
        psi.ArgumentList.Add a
    for k, v in environment do
        psi.Environment.[k] <- v
    psi.UseShellExecute <- false
    psi.RedirectStandardOutput <- true
    psi.RedirectStandardError <- true
    use p = Process.Start psi
    let stderr = p.StandardError.ReadToEndAsync()
    let stdout = p.StandardOutput.ReadToEnd()
    if not (p.WaitForExit(TimeSpan.FromMinutes 5.0)) then
        p.Kill true
        failtestf "the child (%s) did not finish in 5 minutes; output so far:\n%s" group stdout
    p.ExitCode, stdout + stderr.Result

// ------------------------------------------------------------------------------------------
// Models

/// A model that trains a Linear layer with Adam and keeps a running average of its inputs.
type Averager(name: string) as this =
    inherit Module(name)
    let opt = this.Sub("opt", fun () -> Optimizer(Optax.adam 0.01))
    let h = this.Sub("h", fun () -> Dense 3)

    member _.Loss(x: torch.Tensor) = h.Forward(x).square().mean ()

    /// One optimizer step.
    member this.Train(x: torch.Tensor) = opt.Minimize(this.Loss, [ Target.Module h ], x).Loss

    /// Applies the optimizer, initialised for the layer's w and b, to w alone.
    member this.ApplyToOthers(x: torch.Tensor) =
        let ps = State.ofSeq [ this.Path + "/h/w", h.Get("w", fun () -> failwith "created at init") ]
        opt.Apply(ps, State.map (fun _ t -> torch.ones_like t) ps) |> ignore
        0.0f

    /// Updates the running average in place (as code ported from PyTorch does), then puts it.
    member this.AverageInPlace(x: torch.Tensor) =
        let avg = this.Get("avg", fun () -> torch.zeros 4L)
        avg.mul_(0.9.ToScalar()).add_ (x.mean([| 0L |]), alpha = 0.1.ToScalar()) |> ignore
        this.Put("avg", avg) |> ignore
        avg.sum ()

    /// The same update written out of place.
    member this.Average(x: torch.Tensor) =
        let avg = this.Get("avg", fun () -> torch.zeros 4L)
        this.Put("avg", avg.mul(0.9.ToScalar()).add (x.mean([| 0L |]), alpha = 0.1.ToScalar())) |> ignore
        0.0f

let private batch () =
    torch.manual_seed 11L |> ignore
    torch.randn (8L, 4L)

[<Tests>]
let tests =
    testList "reliability" [

        // --------------------------------------------------------------------------------
        // 1. Process aborts

        testCase "autograd errors and failing recomputations raise catchable exceptions (checked in a child process)" <| fun () ->
            let code, output = runChild "autograd" []
            Expect.equal code 0 (sprintf "the child ended with exit code %d (134 is an abort):\n%s" code output)
            let lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            let failed = lines |> Array.filter (fun l -> l.StartsWith "FAIL")
            Expect.isEmpty failed (String.Join("\n", failed))
            Expect.equal (lines |> Array.filter (fun l -> l.StartsWith "ok") |> Array.length) 5 ("every scenario ran:\n" + output)

        // --------------------------------------------------------------------------------
        // 2. Failed donating calls

        testCase "a parameter held as an expanded view is updated out of place when donated, with the same result" <| fun () ->
            let model = Averager "model"
            let x = batch ()
            let start = Nj.init 0L model.Train State.empty x
            // Replace the bias with an expanded view: in-place writes to it fail half-way.
            let expanded () = State.add "model/h/b" (torch.tensor([| 0.5f |]).expand([| 3L |])) (copyState start)
            let plain = runSteps 3 (Nj.purify model.Train) (expanded ()) x
            let donated = runSteps 3 (Nj.purifyWith (donatingAs "train") model.Train) (expanded ()) x
            expectSameState (fst (List.last donated)) (fst (List.last plain)) "the donating run matches the plain one"

        testCase "an optimizer given other parameters fails before writing anything in place, and the donated state stays usable" <| fun () ->
            let model = Averager "model"
            let x = batch ()
            let state = Nj.init 0L model.Train State.empty x
            let before = copyState state
            let e = raised (fun () -> Nj.purifyWith (donatingAs "wrong step") model.ApplyToOthers state x |> ignore)
            mentions e.Message [ "model/opt" ]
            Expect.isFalse state.IsDonated "nothing was written in place, so the state stays usable"
            expectSameState state before "parameters, moments and count as they were"

        testCase "a donating call that fails after its optimizer updated in place marks the state, saying it failed" <| fun () ->
            let model = Averager "model"
            let x = batch ()
            let state = Nj.init 0L model.Train State.empty x
            let stepThenFail (x: torch.Tensor) =
                model.Train x |> ignore
                invalidOp "failed after the step"
            let e = raised (fun () -> Nj.purifyWith (donatingAs "step then fail") stepThenFail state x |> ignore)
            Expect.equal e.Message "failed after the step" "the call's own error comes through"
            Expect.isTrue state.IsDonated "the half-updated state is marked"
            let use' = throwsWith<InvalidOperationException> (fun () -> state.["model/h/w"] |> ignore)
            mentions use' [ "step then fail"; "failed after updating" ]

        // --------------------------------------------------------------------------------
        // 3. Two donating calls on one state

        testCase "a second call on a state that a running donating call owns fails with a clear message" <| fun () ->
            let model = Averager "model"
            let x = batch ()
            let state = Nj.init 0L model.Train State.empty x
            use inside = new ManualResetEventSlim(false)
            use release = new ManualResetEventSlim(false)
            let slow (x: torch.Tensor) =
                inside.Set()
                release.Wait(TimeSpan.FromMinutes 1.0) |> ignore
                model.Train x
            let first = Task.Run(fun () -> Nj.purifyWith (donatingAs "first") slow state x)
            Expect.isTrue (inside.Wait(TimeSpan.FromMinutes 1.0)) "the first call started"
            let second = throwsWith<InvalidOperationException> (fun () -> Nj.purifyWith (donatingAs "second") model.Train state x |> ignore)
            mentions second [ "being donated to first"; "second" ]
            let plain = throwsWith<InvalidOperationException> (fun () -> Nj.purify model.Train state x |> ignore)
            mentions plain [ "being donated to first" ]
            release.Set()
            let next, _ = first.Result
            Expect.isTrue state.IsDonated "the first call took the state"
            Expect.isFalse next.IsDonated "its result is usable"
            Nj.purifyWith (donatingAs "third") model.Train next x |> ignore

        // --------------------------------------------------------------------------------
        // 4. In-place updates by user code

        testCase "an in-place update of a caller's tensor fails naming the key, with any flags" <| fun () ->
            let model = Averager "model"
            let x = batch ()
            let state = Nj.init 0L model.AverageInPlace State.empty x
            for opts, what in
                [ named "average", "default flags"
                  named "average" |> Options.withModify false, "modify=false"
                  named "average" |> Options.withIgnore true, "ignore=true" ] do
                let e = raised (fun () -> Nj.purifyWith opts model.AverageInPlace state x |> ignore)
                Expect.isTrue (e :? InvalidOperationException) (sprintf "%s: %s" what (e.GetType().Name))
                mentions e.Message [ "average"; "'model/avg'"; "in place"; "donate" ]

        testCase "an in-place update without a put, and one inside a call that then fails, are caught too" <| fun () ->
            let state = smallState ()
            let noPut (x: torch.Tensor) =
                (Nj.read "model/scale").add_ x |> ignore
                0
            mentions (throwsWith<InvalidOperationException> (fun () -> Nj.purifyWith (named "no put") noPut state (torch.ones 3L) |> ignore)) [ "'model/scale'" ]
            let thenFail (x: torch.Tensor) : int =
                (Nj.read "model/w").mul_ x |> ignore
                failwith "boom"
            let e = throwsWith<InvalidOperationException> (fun () -> Nj.purifyWith (named "then fail") thenFail state (torch.ones 3L) |> ignore)
            mentions e ["'model/w'"; "boom" ]

        testCase "an in-place update of an entry read through a module's Values or GetM is caught too" <| fun () ->
            let state = smallState ()
            let holder = Module("model")
            let viaValues (x: torch.Tensor) =
                holder.Values.["w"].add_ x |> ignore
                0
            mentions (throwsWith<InvalidOperationException> (fun () -> Nj.purifyWith (named "via values") viaValues state (torch.ones 3L) |> ignore)) [ "'model/w'"; "in place" ]
            let viaGetM (x: torch.Tensor) =
                holder.GetM().["model/scale"].mul_ x |> ignore
                0
            mentions (throwsWith<InvalidOperationException> (fun () -> Nj.purifyWith (named "via getm") viaGetM state (torch.ones 3L) |> ignore)) [ "'model/scale'"; "in place" ]

        testCase "in-place updates of tensors the call created, out-of-place updates and donated states are fine" <| fun () ->
            let model = Averager "model"
            let x = batch ()
            let state = Nj.init 0L model.Average State.empty x
            let next, _ = Nj.purify model.Average state x
            Expect.isFalse (identical next.["model/avg"] state.["model/avg"]) "the average moved"
            let own (x: torch.Tensor) =
                let t = (Nj.read "model/avg").clone ()
                t.mul_ (2.0.ToScalar()) |> ignore
                Nj.put "model/avg" t |> ignore
                0
            Nj.purify own state x |> ignore
            let plain, _ = Nj.purify model.Average (copyState state) x
            let donated, _ = Nj.purifyWith (donatingAs "average") model.AverageInPlace (copyState state) x
            expectIdentical donated.["model/avg"] plain.["model/avg"] "donating allows the in-place form"

        // --------------------------------------------------------------------------------
        // 5. Corrupted checkpoints

        testCase "1 to 4 flipped bytes in a checkpoint's data never load; the error names the file and the first bad key" <| fun () ->
            use dir = new CheckpointTests.TempDir()
            let path = dir.File "data.safetensors"
            torch.manual_seed 3L |> ignore
            let state =
                State.ofSeq [ "model/w", torch.randn(16L, 8L); "model/b", torch.randn 8L; "opt/count", torch.tensor 12L
                              "mask", torch.rand(20L).gt (0.5.ToScalar()); "half", torch.randn(6L).to_type torch.float16 ]
            Checkpoint.save path (state, CheckpointMetadata.ofStep 5L)
            let original = File.ReadAllBytes path
            let headerEnd = 8 + int (BitConverter.ToUInt64(original, 0))
            // The keys in data order with where their bytes start, from the file's own header.
            let _, entries = Checkpoint.inspect path
            let sizes = entries |> List.map (fun e -> e.Key, (e.Shape |> Array.fold (*) 1L) * int64 (torch.empty([||], dtype = e.Dtype).ElementSize)) |> Map.ofList
            let order = Text.RegularExpressions.Regex.Matches(Text.Encoding.UTF8.GetString(original, 8, headerEnd - 8), "\"([a-z/_]+)\":\{\"dtype") |> Seq.map (fun m -> m.Groups.[1].Value) |> List.ofSeq
            let starts = order |> List.scan (fun offset k -> offset + sizes.[k]) 0L
            let keyAt (position: int) = order.[(starts |> List.findIndexBack (fun s -> s <= int64 (position - headerEnd)))]
            let rng = Random 12
            for trial in 1 .. 300 do
                let bytes = Array.copy original
                let positions = List.init (rng.Next(1, 5)) (fun _ -> rng.Next(headerEnd, bytes.Length)) |> List.distinct
                for p in positions do
                    bytes.[p] <- bytes.[p] ^^^ byte (rng.Next(1, 256))
                File.WriteAllBytes(path, bytes)
                let first = keyAt (List.min positions)
                let e = raised (fun () -> Checkpoint.load path |> ignore)
                Expect.isTrue (e :? InvalidDataException) (sprintf "trial %d: %s: %s" trial (e.GetType().Name) e.Message)
                mentions e.Message [ path; sprintf "'%s'" first ]
                Expect.isTrue (raised (fun () -> Checkpoint.loadInto state path |> ignore) :? InvalidDataException) "loadInto too"

        testCase "flipped bytes in a checkpoint's header never load, and never give renamed keys or changed shapes" <| fun () ->
            use dir = new CheckpointTests.TempDir()
            let path = dir.File "header.safetensors"
            let state = State.ofSeq [ "model/h1/w", torch.ones(3L, 4L); "model/h1/b", torch.zeros 4L; "step", torch.tensor 7L ]
            Checkpoint.save path (state, CheckpointMetadata.ofStep 5L |> CheckpointMetadata.withString "run" "a")
            let original = File.ReadAllBytes path
            let headerEnd = 8 + int (BitConverter.ToUInt64(original, 0))
            let rng = Random 21
            for trial in 1 .. 500 do
                let bytes = Array.copy original
                let positions = List.init (rng.Next(1, 5)) (fun _ -> rng.Next(0, headerEnd))
                for p in positions do
                    bytes.[p] <- bytes.[p] ^^^ byte (rng.Next(1, 256))
                File.WriteAllBytes(path, bytes)
                match (try Choice1Of2(Checkpoint.load path) with e -> Choice2Of2 e) with
                | Choice1Of2 _ -> failtestf "trial %d: a header with bytes flipped at %A loaded" trial positions
                | Choice2Of2 e ->
                    Expect.isTrue (e :? InvalidDataException) (sprintf "trial %d: %s: %s" trial (e.GetType().Name) e.Message)
                    mentions e.Message [ path ]

        testCase "files without checksums (older files, other writers) still load; bool bytes other than 0 and 1 do not" <| fun () ->
            use dir = new CheckpointTests.TempDir()
            let path = dir.File "plain.safetensors"
            let header = """{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"m":{"dtype":"BOOL","shape":[3],"data_offsets":[8,11]}}"""
            File.WriteAllBytes(path, CheckpointTests.rawFile header (Array.append (CheckpointTests.f32Bytes [ 1.0f; 2.0f ]) [| 1uy; 0uy; 1uy |]))
            let loaded, _ = Checkpoint.load path
            expectIdentical loaded.["w"] (vec [ 1.0f; 2.0f ]) "w"
            File.WriteAllBytes(path, CheckpointTests.rawFile header (Array.append (CheckpointTests.f32Bytes [ 1.0f; 2.0f ]) [| 1uy; 7uy; 1uy |]))
            mentions (throwsWith<InvalidDataException> (fun () -> Checkpoint.load path |> ignore)) [ path; "'m'"; "BOOL"; "7" ]

        testCase "a missing checksum entry, or one Ninjax does not write, is corruption; ninjax.* metadata names are reserved" <| fun () ->
            use dir = new CheckpointTests.TempDir()
            let path = dir.File "m.safetensors"
            Checkpoint.save path (smallState (), CheckpointMetadata.empty)
            let text = File.ReadAllBytes path
            let headerEnd = 8 + int (BitConverter.ToUInt64(text, 0))
            let header = Text.Encoding.UTF8.GetString(text, 8, headerEnd - 8)
            // Drop the header checksum (keeping the length by padding): the tensor checksums remain.
            let dropped = Text.RegularExpressions.Regex.Replace(header, ",\"ninjax\\.header\":\"[^\"]*\"", "")
            File.WriteAllBytes(path, CheckpointTests.rawFile dropped (text.[headerEnd..]))
            mentions (throwsWith<InvalidDataException> (fun () -> Checkpoint.load path |> ignore)) [ path; "ninjax.header" ]
            mentions
                (throwsWith<ArgumentException> (fun () -> Checkpoint.save path (smallState (), CheckpointMetadata.empty |> CheckpointMetadata.withString "ninjax.x" "1")))
                [ "'ninjax.x'"; "reserved" ]

        // --------------------------------------------------------------------------------
        // 6. Writes that escape the call

        testCase "a write after an await, when the call has returned, raises instead of being lost" <| fun () ->
            let gate = TaskCompletionSource()
            let late (x: torch.Tensor) : Task =
                task {
                    do! gate.Task
                    Nj.put "late" x |> ignore
                }
            let _, pending = Nj.purifyWith (named "late writer" |> Options.withCreate true) late State.empty (torch.ones 1L)
            gate.SetResult()
            let e = raised (fun () -> pending.Wait())
            let inner = (e :?> AggregateException).InnerException
            Expect.isTrue (inner :? InvalidOperationException) (inner.GetType().Name)
            mentions inner.Message [ "late writer" ]
            Expect.isTrue (inner.Message.Contains "has already returned" || inner.Message.Contains "from thread") inner.Message

        testCase "writes from other threads inside a call raise; the call's own thread still works" <| fun () ->
            let spread (x: torch.Tensor) =
                let mutable fromThread: exn = null
                let worker = Thread(fun () -> try Nj.put "a" x |> ignore with e -> fromThread <- e)
                worker.Start()
                worker.Join()
                // Two iterations that meet at a barrier run on two threads at once: the call's own
                // thread and a worker.
                use both = new Barrier(2)
                let fromParallel =
                    raised (fun () ->
                        Parallel.For(0, 2, fun i ->
                            both.SignalAndWait(TimeSpan.FromSeconds 60.0) |> ignore
                            Nj.put (sprintf "p%d" i) x |> ignore) |> ignore)
                Nj.put "own" x |> ignore
                fromThread, fromParallel
            let state, (fromThread, fromParallel) = Nj.purifyWith (named "spread" |> Options.withCreate true) spread State.empty (torch.ones 1L)
            Expect.isNotNull fromThread "a write from another thread raised"
            mentions fromThread.Message [ "from thread"; "spread" ]
            // At least one iteration ran on a worker (Parallel.For may run both there).
            let inners = (fromParallel :?> AggregateException).Flatten().InnerExceptions
            for e in inners do
                mentions e.Message [ "from thread"; "spread" ]
            Expect.equal (inners.Count + (List.filter (fun k -> state.ContainsKey k) [ "p0"; "p1" ]).Length) 2 "each write was refused or landed"
            Expect.isTrue (state.ContainsKey "own") "the call's own write landed"

        // --------------------------------------------------------------------------------
        // 7. Smaller holes

        testCase "null tensors are refused by State.add and State.map, naming the key" <| fun () ->
            let s = smallState ()
            mentions (throwsWith<ArgumentNullException> (fun () -> State.add "model/x" null s |> ignore)) [ "'model/x'" ]
            mentions (throwsWith<InvalidOperationException> (fun () -> State.map (fun k t -> if k = "model/w" then null else t) s |> ignore)) [ "'model/w'" ]

        testCase "a disposed tensor in the state gives an error naming its key" <| fun () ->
            let t = torch.ones 2L
            let s = State.ofSeq [ "gone", t ]
            t.Dispose()
            let e = raised (fun () -> Nj.purify (fun () -> Nj.read "gone") s () |> ignore)
            Expect.isTrue (e :? ObjectDisposedException) (e.GetType().Name)
            mentions e.Message [ "'gone'" ]
            mentions (throwsWith<ArgumentException> (fun () -> Nj.purifyWith creating (fun () -> Nj.put "x" t) State.empty () |> ignore)) [ "'x'"; "disposed" ]

        testCase "the key __metadata__, disposed tensors and meta-device tensors are refused by save, naming the key" <| fun () ->
            use dir = new CheckpointTests.TempDir()
            let path = dir.File "k.safetensors"
            mentions
                (throwsWith<ArgumentException> (fun () -> Checkpoint.save path (State.ofSeq [ "__metadata__", torch.ones 1L ], CheckpointMetadata.empty)))
                [ "'__metadata__'"; "reserved" ]
            let gone = torch.ones 1L
            gone.Dispose()
            let meta = torch.empty([| 2L |], device = torch.META)
            mentions
                (throwsWith<ArgumentException> (fun () -> Checkpoint.save path (State.ofSeq [ "a/gone", gone; "a/meta", meta; "a/ok", torch.ones 1L ], CheckpointMetadata.empty)))
                [ "'a/gone' (a disposed tensor)"; "'a/meta' (on the meta device" ]
            Expect.isFalse (File.Exists path) "nothing written"

        testCase "a 240-character file name saves and loads; save errors name the target" <| fun () ->
            use dir = new CheckpointTests.TempDir()
            let path = dir.File(String('c', 228) + ".safetensors")
            Expect.equal (Path.GetFileName path).Length 240 "the name's length"
            Checkpoint.save path (smallState (), CheckpointMetadata.ofStep 1L)
            let loaded, _ = Checkpoint.load path
            expectSameState loaded (smallState ()) "loaded back"
            let missing = Path.Combine(dir.Path, "no such folder", "x.safetensors")
            let e = throwsWith<DirectoryNotFoundException> (fun () -> Checkpoint.save missing (smallState (), CheckpointMetadata.empty))
            Expect.stringStarts e (sprintf "Cannot save the checkpoint '%s'" missing) "the target comes first"

        testCase "loading a directory or a FIFO fails at once with a message saying what it is" <| fun () ->
            use dir = new CheckpointTests.TempDir()
            mentions (throwsWith<IOException> (fun () -> Checkpoint.load dir.Path |> ignore)) [ dir.Path; "is a directory" ]
            let fifo = dir.File "pipe.safetensors"
            use mkfifo = Process.Start("mkfifo", fifo)
            mkfifo.WaitForExit()
            Expect.equal mkfifo.ExitCode 0 "mkfifo made the pipe"
            let loading = Task.Run(fun () -> raised (fun () -> Checkpoint.load fifo |> ignore))
            if not (loading.Wait(TimeSpan.FromSeconds 30.0)) then
                // Unblock the reader before failing, so that the test run can go on.
                File.WriteAllBytes(fifo, [||])
                failtest "loading a FIFO blocked"
            Expect.isTrue (loading.Result :? IOException) (loading.Result.GetType().Name)
            mentions loading.Result.Message [ fifo; "FIFO" ]

        testCase "float16 and bfloat16 training with donation matches training without it, bit for bit" <| fun () ->
            for dtype in [ torch.float16; torch.bfloat16 ] do
                let model = Averager "model"
                let start =
                    Nj.init 0L model.Train State.empty (batch ())
                    |> State.map (fun k t -> if torch.is_floating_point t && not (k.EndsWith "/learning_rate") then t.to_type dtype else t)
                let x = batch().to_type dtype
                let plain = runSteps 5 (Nj.purify model.Train) (copyState start) x
                let donated = runSteps 5 (Nj.purifyWith (donatingAs "train") model.Train) (copyState start) x
                expectSameState (fst (List.last donated)) (fst (List.last plain)) (sprintf "%O" dtype)

        // --------------------------------------------------------------------------------
        // 8. The wrong libtorch

        testCase "the libtorch check accepts TorchSharp's own libtorch in an app folder and in NuGet packages" <| fun () ->
            let app =
                [ "/app/bin/libLibTorchSharp.so"; "/app/bin/libtorch.so"; "/app/bin/libtorch_cpu.so"; "/app/bin/libc10.so"; "/usr/lib/x86_64-linux-gnu/libstdc++.so.6" ]
            Expect.isNone (LibTorchCheck.problem "2.10.0" app) "an application's output folder"
            let script =
                [ "/root/.nuget/packages/torchsharp/0.107.0/runtimes/linux-x64/native/libLibTorchSharp.so"
                  "/root/.nuget/packages/libtorch-cpu-linux-x64/2.10.0/runtimes/linux-x64/native/libtorch_cpu.so"
                  "/root/.nuget/packages/libtorch-cpu-linux-x64/2.10.0/runtimes/linux-x64/native/libc10.so" ]
            Expect.isNone (LibTorchCheck.problem "2.10.0" script) "a script's packages"
            Expect.isNone (LibTorchCheck.problem (LibTorchCheck.expectedVersion ()) (LibTorchCheck.mappedPaths (File.ReadLines "/proc/self/maps"))) "this process"
            LibTorchCheck.ensure ()

        testCase "the libtorch check names another libtorch on the loader path and says how to fix it" <| fun () ->
            let debian =
                [ "/root/.nuget/packages/torchsharp/0.107.0/lib/net8.0/cpu/libLibTorchSharp.so"
                  "/usr/lib/x86_64-linux-gnu/libtorch_cpu.so.2.6"
                  "/usr/lib/x86_64-linux-gnu/libc10.so.2.6" ]
            let message = (LibTorchCheck.problem "2.10.0" debian).Value
            mentions message [ "/usr/lib/x86_64-linux-gnu/libtorch_cpu.so.2.6"; "2.10.0"; "python3-torch"; "LD_LIBRARY_PATH"; "NINJAX_LIBTORCH_CHECK=off" ]
            let wrongPackage = [ "/p/torchsharp/0.107.0/runtimes/linux-x64/native/libLibTorchSharp.so"; "/p/libtorch-cpu-linux-x64/2.6.0/runtimes/linux-x64/native/libtorch_cpu.so" ]
            Expect.isSome (LibTorchCheck.problem "2.10.0" wrongPackage) "a package of another version"
            let twice = [ "/app/libLibTorchSharp.so"; "/app/libc10.so"; "/opt/conda/lib/python3.12/site-packages/torch/lib/libc10.so" ]
            mentions (LibTorchCheck.problem "2.10.0" twice).Value [ "site-packages/torch/lib/libc10.so" ]

        testCase "a process with another libc10 preloaded fails at its first purified call (child process)" <| fun () ->
            let native = Path.GetDirectoryName(typeof<torch.Tensor>.Assembly.Location)
            let c10 =
                [ Path.Combine(native, "libc10.so"); Path.Combine(native, "runtimes", "linux-x64", "native", "libc10.so") ]
                |> List.find File.Exists
            use dir = new CheckpointTests.TempDir()
            let foreign = dir.File "libc10.so.2.6"
            File.Copy(c10, foreign)
            let code, output = runChild "libtorch" [ "LD_PRELOAD", foreign ]
            Expect.equal code 3 ("the first purified call fails:\n" + output)
            mentions output [ "InvalidOperationException"; foreign; "LD_LIBRARY_PATH" ]
            let code, output = runChild "libtorch" [ "LD_PRELOAD", foreign; LibTorchCheck.SwitchVariable, "off" ]
            Expect.equal code 0 ("the check can be switched off:\n" + output)

        // --------------------------------------------------------------------------------
        // glibc's heap keeps a step's freed memory for the next step (NativeHeap)

        testCase "after the first purified call, memory a step frees stays mapped for the next one (child processes)" <| fun () ->
            let kept (environment: (string * string) list) =
                let code, output = runChild "heap" environment
                Expect.equal code 0 ("the child ran:\n" + output)
                let line = output.Split('\n') |> Array.find (fun l -> l.StartsWith "kept: ")
                int64 (line.Substring 6), output
            let tuned, output = kept []
            mentions output [ "tuning: Tuned" ]
            // Some blocks may land in free chunks below the top; most of the 24 MB ends up there.
            Expect.isGreaterThanOrEqual tuned (16L * 1048576L) ("the 24 MB freed stays at the top of the heap:\n" + output)
            let untuned, output = kept [ NativeHeap.SwitchVariable, "off" ]
            mentions output [ "NINJAX_MALLOC_TUNING=off" ]
            Expect.isLessThan untuned (4L * 1048576L) ("without the tuning glibc gives it back (this is what the tuning prevents):\n" + output)
            let _, output = kept [ "GLIBC_TUNABLES", "glibc.malloc.trim_threshold=1048576" ]
            mentions output [ "GLIBC_TUNABLES" ]

        testCase "the heap tuning leaves thresholds the user chose, and other allocators, alone" <| fun () ->
            let env (pairs: (string * string) list) = fun name -> pairs |> List.tryFind (fun (k, _) -> k = name) |> Option.map snd |> Option.defaultValue null
            Expect.isNone (NativeHeap.blockedBy (env [])) "a plain environment"
            Expect.isNone (NativeHeap.blockedBy (env [ "GLIBC_TUNABLES", "glibc.malloc.arena_max=2" ])) "other tunables"
            for pairs, reason in
                [ [ NativeHeap.SwitchVariable, "OFF" ], "NINJAX_MALLOC_TUNING=off"
                  [ "GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=65536" ], "GLIBC_TUNABLES"
                  [ "MALLOC_TRIM_THRESHOLD_", "1000000" ], "MALLOC_*_"
                  [ "LD_PRELOAD", "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2" ], "another allocator" ] do
                match NativeHeap.blockedBy (env pairs) with
                | Some why -> mentions why [ reason ]
                | None -> failtestf "%A should leave the heap alone" pairs

        // --------------------------------------------------------------------------------
        // MKL's AVX-512 kernels on AMD processors (MklKernels)

        testCase "on an AMD processor with AVX-512, MKL runs its AVX-512 kernels after the first call, and products stay exact to float32 (child processes)" <| fun () ->
            // The children inherit this process's environment (a NINJAX_MKL_KERNELS=off included).
            let applies = (MklKernels.blockedBy Environment.GetEnvironmentVariable (MklKernels.processorVendor ()) (MklKernels.hasAvx512 ())).IsNone && OperatingSystem.IsLinux()
            let run (group: string) (environment: (string * string) list) =
                let code, output = runChild group (("MKL_VERBOSE", "1") :: environment)
                Expect.equal code 0 ("the child ran:\n" + output)
                let line (prefix: string) = output.Split('\n') |> Array.tryFind (fun l -> l.StartsWith prefix) |> Option.defaultWith (fun () -> failtestf "no line '%s' in:\n%s" prefix output)
                // MKL_VERBOSE's first line names the instruction set MKL chose.
                let verbose = line "MKL_VERBOSE oneMKL"
                let error = (line "product error: ").Split(' ').[2] |> float
                // A product of 256 terms of unit normals in float32: a few ulps of entries near 50.
                Expect.isLessThan error 1e-3 ("the product agrees with float64 arithmetic:\n" + output)
                line "tuning: MKL kernels: ", verbose
            let mkl, verbose = run "mkl" []
            if applies then
                mentions mkl [ "AVX-512" ]
                mentions verbose [ "AVX-512" ]
                let off, verbose = run "mkl" [ MklKernels.SwitchVariable, "off" ]
                mentions off [ "NINJAX_MKL_KERNELS=off" ]
                Expect.isFalse (verbose.Contains "AVX-512") ("without the switch MKL keeps its AVX2 kernels (what the switch changes): " + verbose)
                let late, verbose = run "mkl-after-product" []
                mentions late [ "already chosen"; "Tuning.apply" ]
                Expect.isFalse (verbose.Contains "AVX-512") ("MKL's choice was made before the switch: " + verbose)
            else
                mentions mkl [ "left to MKL" ]

        testCase "the MKL switch leaves the user's MKL settings, other processors and other machine code alone" <| fun () ->
            let env (pairs: (string * string) list) = fun name -> pairs |> List.tryFind (fun (k, _) -> k = name) |> Option.map snd |> Option.defaultValue null
            Expect.isNone (MklKernels.blockedBy (env []) "AuthenticAMD" true) "AMD with AVX-512"
            for pairs, vendor, avx512, reason in
                [ [ MklKernels.SwitchVariable, "Off" ], "AuthenticAMD", true, "NINJAX_MKL_KERNELS=off"
                  [ "MKL_CBWR", "AVX2" ], "AuthenticAMD", true, "MKL_CBWR"
                  [ "MKL_ENABLE_INSTRUCTIONS", "AVX2" ], "AuthenticAMD", true, "MKL_ENABLE_INSTRUCTIONS"
                  [], "GenuineIntel", true, "GenuineIntel"
                  [], "AuthenticAMD", false, "no AVX-512" ] do
                match MklKernels.blockedBy (env pairs) vendor avx512 with
                | Some why -> mentions why [ reason ]
                | None -> failtestf "%A on %s (AVX-512 %b) should leave MKL alone" pairs vendor avx512
            // The load of the cached word: 8B 05 rel32, then the check's own bytes.
            let tail = snd (List.head MklKernels.checks)
            let code (rel: int) (rest: byte[]) = Array.concat [ [| 0x8Buy; 0x05uy |]; BitConverter.GetBytes rel; rest ]
            Expect.equal (MklKernels.cachedWord (code 0x100 tail) 0x1000n tail) (Some 0x1106n) "entry + 6 + rel32"
            Expect.equal (MklKernels.cachedWord (code -0x20 tail) 0x1000n tail) (Some 0xFE6n) "a negative displacement"
            Expect.isNone (MklKernels.cachedWord (code 0x100 (Array.append [| 0x90uy |] tail)) 0x1000n tail) "other bytes after the load"
            Expect.isNone (MklKernels.cachedWord (Array.append [| 0x8Buy; 0x0Duy |] (Array.sub (code 0x100 tail) 2 9)) 0x1000n tail) "another register"
            Expect.isNone (MklKernels.cachedWord (Array.sub (code 0x100 tail) 0 8) 0x1000n tail) "too short"
            let maps =
                [ "7f0000000000-7f0000001000 r-xp 00000000 fd:01 42 /lib/libtorch_cpu.so"
                  "7f0000002000-7f0000003000 rw-p 00002000 fd:01 42 /lib/libtorch_cpu.so"
                  "7f0000003000-7f0000004000 rw-p 00000000 00:00 0 " ]
            Expect.isTrue (MklKernels.writableIn maps "/lib/libtorch_cpu.so" 0x7f0000002ffcn) "inside the writable data"
            Expect.isFalse (MklKernels.writableIn maps "/lib/libtorch_cpu.so" 0x7f0000002ffen) "a word that runs past its end"
            Expect.isFalse (MklKernels.writableIn maps "/lib/libtorch_cpu.so" 0x7f0000000100n) "the code"
            Expect.isFalse (MklKernels.writableIn maps "/lib/libtorch_cpu.so" 0x7f0000003100n) "another mapping"
            Expect.isFalse (MklKernels.writableIn maps "/lib/other.so" 0x7f0000002100n) "another file"

        testCase "Tuning.describe says what each process-wide setting came to" <| fun () ->
            let lines = Tuning.describe ()
            Expect.equal lines.Count 2 "the heap and MKL"
            Expect.stringStarts lines.[0] "glibc heap: " "the heap first"
            Expect.stringStarts lines.[1] "MKL kernels: " "then MKL"
    ]
