/// Data-parallel training under `mpirun -np 2` on this machine: each test starts one job of this
/// program in worker mode (Worker.fs) and checks what the ranks wrote.
module Ninjax.Distributed.Tests.DataParallelTests

open System
open System.IO
open Expecto
open TorchSharp
open Ninjax

let private load (folder: string) (name: string) : State = fst (Checkpoint.load (Path.Combine(folder, name + ".safetensors")))

let private read (folder: string) (name: string) = File.ReadAllText(Path.Combine(folder, name))

/// True when both tensors have the same dtype, shape and bytes.
let private sameBits (a: torch.Tensor) (b: torch.Tensor) =
    a.dtype = b.dtype && a.shape = b.shape && a.contiguous().bytes.SequenceEqual(b.contiguous().bytes)

/// The largest absolute difference relative to the largest magnitude of the expected tensor.
let private relativeError (actual: torch.Tensor) (expected: torch.Tensor) : float =
    let scale = expected.abs().max().ToDouble()
    let diff = (actual - expected).abs().max().ToDouble()
    if scale = 0.0 then diff else diff / scale

let private expectFinished (job: Launch.Job) =
    if job.TimedOut then failtestf "the mpirun job hung and was killed after %.0f s. Its output:\n%s" job.Elapsed.TotalSeconds job.Output
    if job.ExitCode <> 0 then failtestf "the mpirun job exited with code %d. Its output:\n%s" job.ExitCode job.Output

let private minutes n = TimeSpan.FromMinutes(float n)

let private parameterKeys (state: State) = State.keys state |> List.filter (fun k -> not (k.StartsWith "model/opt"))

let private equivalence (optimizer: string) =
    test (sprintf "%s: 2 ranks on half batches match 1 process on whole batches after 50 steps (1e-6 relative); ranks bit-identical" optimizer) {
        let folder = Launch.folder ("equivalence-" + optimizer)
        expectFinished (Launch.worker 2 [] (minutes 4) [ "equivalence"; optimizer; folder ])
        // Each rank trained on its own half of every batch of 16.
        for rank, first in [ 0, 0; 1, 8 ] do
            let rows = read folder (sprintf "rows%d.txt" rank) |> fun t -> t.Split('\n')
            Expect.equal rows.Length 50 "50 steps"
            for line in rows do
                Expect.equal line (sprintf "%d 8" first) (sprintf "rank %d trains on rows %d to %d of every batch" rank first (first + 7))
        let rank0, rank1, reference = load folder "rank0", load folder "rank1", load folder "reference"
        Expect.sequenceEqual (State.keys rank1) (State.keys rank0) "both ranks hold the same keys"
        for k in State.keys rank0 do
            Expect.isTrue (sameBits rank0.[k] rank1.[k]) (sprintf "'%s' is bit-identical on both ranks" k)
        Expect.equal (read folder "losses0.txt") (read folder "losses1.txt") "both ranks report the same (averaged) losses"
        Expect.equal (read folder "norms0.txt") (read folder "norms1.txt") "both ranks report the same gradient norms (of the averaged gradients)"
        let numbers name = (read folder name).Split('\n') |> Array.map float
        Array.iteri2
            (fun i averaged whole ->
                let error = abs (averaged - whole) / abs whole
                Expect.isLessThanOrEqual error 1e-6 (sprintf "step %d: the ranks' averaged loss %g is the whole batch's loss %g (relative difference %.3g)" i averaged whole error))
            (numbers "losses0.txt") (numbers "reference-losses.txt")
        // The mean of the half batches' gradients is the whole batch's gradient: its norm, not a
        // rank's own, is what the optimizer reports.
        Array.iteri2
            (fun i averaged whole ->
                let error = abs (averaged - whole) / abs whole
                Expect.isLessThanOrEqual error 1e-5 (sprintf "step %d: the ranks' gradient norm %g is the whole batch's %g (relative difference %.3g)" i averaged whole error))
            (numbers "norms0.txt") (numbers "reference-norms.txt")
        let keys = parameterKeys reference
        Expect.equal keys [ "model/h/b"; "model/h/w"; "model/out/b"; "model/out/w" ] "the two layers' weights and biases"
        for k in keys do
            let error = relativeError rank0.[k] reference.[k]
            Expect.isLessThanOrEqual error 1e-6 (sprintf "'%s' after 50 steps agrees with one process on whole batches within 1e-6 relative (it differs by %.3g)" k error)
        Expect.equal (rank0.["model/opt/count"].ToInt64()) 50L "50 updates were applied"
    }

/// Runs the fault scenario and checks the job ended by itself, with an error, well within the
/// test's limit, without rank 0 finishing its loop.
let private fault (how: string) (env: (string * string) list) : string =
    let folder = Launch.folder ("fault-" + how)
    let job = Launch.worker 2 env (minutes 3) [ "fault"; how; folder ]
    if job.TimedOut then failtestf "the job hung after rank 1 failed (%s); killed after %.0f s. Its output:\n%s" how job.Elapsed.TotalSeconds job.Output
    Expect.notEqual job.ExitCode 0 (sprintf "mpirun reports the failure with a non-zero exit code. Output:\n%s" job.Output)
    Expect.isLessThan job.Elapsed.TotalSeconds 90.0 "the job ended within 90 s"
    Expect.isFalse (File.Exists(Path.Combine(folder, "finished0.txt"))) "rank 0 did not go on training alone"
    job.Output

[<Tests>]
let tests =
    testList "data-parallel (mpirun -np 2)" [
        equivalence "sgd"
        equivalence "adam"

        test "broadcast: ranks initialised with different seeds end with rank 0's state" {
            let folder = Launch.folder "broadcast"
            expectFinished (Launch.worker 2 [] (minutes 2) [ "broadcast"; folder ])
            let before0, before1 = load folder "before0", load folder "before1"
            let after0, after1 = load folder "after0", load folder "after1"
            Expect.isFalse (sameBits before0.["model/h/w"] before1.["model/h/w"]) "the seeds gave the ranks different parameters"
            for k in State.keys before0 do
                Expect.isTrue (sameBits after0.[k] before0.[k]) (sprintf "rank 0 keeps its '%s'" k)
                Expect.isTrue (sameBits after1.[k] before0.[k]) (sprintf "rank 1 gets rank 0's '%s'" k)
        }

        test "a layout mismatch between ranks is reported by key on every rank" {
            let folder = Launch.folder "layout"
            expectFinished (Launch.worker 2 [] (minutes 2) [ "layout"; folder ])
            for rank in [ 0; 1 ] do
                let message = read folder (sprintf "error%d.txt" rank)
                Expect.stringContains message "'model/h/w' is float32 [8, 48] on rank 1 but float32 [8, 32] on rank 0" (sprintf "rank %d names the weight and both shapes" rank)
                Expect.stringContains message "'model/out/w' is float32 [48, 4] on rank 1 but float32 [32, 4] on rank 0" (sprintf "rank %d names the next layer too" rank)
                Expect.stringContains message "'model/opt/mu/model/h/w'" (sprintf "rank %d names the optimizer's moments" rank)
        }

        test "checkInSync names the entry whose values differ between ranks" {
            let folder = Launch.folder "sync"
            expectFinished (Launch.worker 2 [] (minutes 2) [ "sync"; folder ])
            for rank in [ 0; 1 ] do
                let message = read folder (sprintf "error%d.txt" rank)
                Expect.stringContains message "in 1 entries: 'model/out/b' (ranks 1)" (sprintf "rank %d names the entry and the rank" rank)
        }

        test "a killed rank ends the job with an error, no hang" {
            let output = fault "kill" []
            // mpirun's own notice goes through its help system, which now and then fails while the
            // job is torn down ("ORTE_ERROR_LOG: Out of resource ... show_help.c"): either message will do.
            Expect.isTrue
                (output.Contains "exited on signal 9" || output.Contains "Rank 0 of 2: stopped by the MPI launcher (SIGTERM)")
                (sprintf "mpirun names the killed rank, or rank 0 says why it stops. Output:\n%s" output)
        }

        test "an exception in one rank aborts the job with its message, no hang" {
            let output = fault "exception" []
            Expect.stringContains output "Rank 1 of 2: unhandled exception, aborting the MPI job" "rank 1 says it aborts the job"
            Expect.stringContains output "rank 1 fails on purpose at step 20" "with the exception's message"
        }

        test "a hung rank makes the others stop after the collective timeout" {
            let output = fault "hang" [ "NINJAX_MPI_TIMEOUT", "5" ]
            Expect.stringContains output "Rank 0 of 2 waited 5 s in all-reduce" "rank 0 names the collective it waited in and for how long"
            Expect.stringContains output "This rank exits (code 1) instead of hanging" "and that it exits"
        }

        test "a job of one process (no mpirun) trains bit for bit as without data-parallel" {
            let folder = Launch.folder "single"
            let dll = typeof<Launch.Job>.Assembly.Location
            expectFinished (Launch.start (Launch.dotnetHost ()) [ dll; "worker"; "equivalence"; "adam"; folder ] [] (minutes 2))
            let rank0, reference = load folder "rank0", load folder "reference"
            for k in State.keys reference do
                Expect.isTrue (sameBits rank0.[k] reference.[k]) (sprintf "'%s' is bit-identical" k)
        }

        test "the C# example trains data-parallel on 2 ranks and ends in sync" {
            let job = Launch.program 2 (minutes 4) "examples/DataParallel.CSharp/bin/Release/net10.0/DataParallel.CSharp.dll" [ "200" ]
            expectFinished job
            Expect.stringContains job.Output "2 ranks hold the same state." "the ranks' states agree"
            let lines = job.Output.Split('\n') |> Array.filter (fun l -> l.Contains "step 0: loss")
            Expect.equal lines.Length 1 "rank 0 alone prints"
        }

        test "the benchmark reports the all-reduce's share of a step at 2 processes" {
            let job = Launch.program 2 (minutes 4) "bench/Ninjax.Bench/bin/Release/net10.0/Ninjax.Bench.dll" [ "--distributed"; "--steps"; "30" ]
            expectFinished job
            Expect.stringContains job.Output "Data-parallel step at 2 processes" "the table's title"
            for model in [ "mlp"; "cnn" ] do
                let row = job.Output.Split('\n') |> Array.filter (fun l -> l.StartsWith(model + " "))
                Expect.equal row.Length 1 (sprintf "one row for the %s, from rank 0 only" model)
                let shares = row.[0].Split('%') |> Array.take 2 |> Array.map (fun part -> float (part.Trim().Split(' ') |> Array.last))
                for share in shares do
                    Expect.isTrue (share > 0.0 && share < 100.0) (sprintf "the %s's all-reduce share %.1f %% lies between 0 and 100" model share)
        }

        test "per-rank seeds: rank 0 keeps the seed, the ranks draw different numbers" {
            let folder = Launch.folder "seeds"
            expectFinished (Launch.worker 2 [] (minutes 2) [ "seeds"; folder ])
            Expect.equal (read folder "seed0.txt") "5" "rank 0 draws with the seed itself"
            Expect.notEqual (read folder "seed1.txt") "5" "rank 1 draws with another seed"
            let draws = (load folder "draws0").["draws"]
            Expect.isFalse (sameBits draws.[0L] draws.[1L]) "the two ranks drew different numbers"
            Expect.isTrue (sameBits draws (load folder "draws1").["draws"]) "both ranks gathered the same draws"
        }
    ]
