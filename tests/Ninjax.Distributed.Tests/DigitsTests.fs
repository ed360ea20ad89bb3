/// The digits trainer under `mpirun -np 2`: batches split across ranks, rank 0 alone prints and
/// saves, resuming works.
module Ninjax.Distributed.Tests.DigitsTests

open System
open System.IO
open Expecto
open TorchSharp
open Ninjax

let private finished (job: Launch.Job) =
    if job.TimedOut then failtestf "the trainer hung and was killed after %.0f s. Its output:\n%s" job.Elapsed.TotalSeconds job.Output
    if job.ExitCode <> 0 then failtestf "the trainer exited with code %d. Its output:\n%s" job.ExitCode job.Output
    job.Output.Split('\n') |> Array.map (fun l -> l.Trim()) |> Array.filter (fun l -> l <> "")

let private count (prefix: string) (lines: string[]) = lines |> Array.filter (fun l -> l.StartsWith prefix) |> Array.length

let private sameBits (a: torch.Tensor) (b: torch.Tensor) =
    a.dtype = b.dtype && a.shape = b.shape && a.contiguous().bytes.SequenceEqual(b.contiguous().bytes)

let private limit = TimeSpan.FromMinutes 5.0

[<Tests>]
let tests =
    testList "digits trainer (mpirun -np 2)" [
        test "2 ranks train, rank 0 alone prints and saves; resuming after 1 epoch equals 2 epochs in one go" {
            let folder = Launch.folder "digits"
            let full, first, resumed = Path.Combine(folder, "full.safetensors"), Path.Combine(folder, "first.safetensors"), Path.Combine(folder, "resumed.safetensors")
            let common = [ "--model"; "mlp"; "--seed"; "4" ]
            let lines = finished (Launch.digits 2 limit (common @ [ "--epochs"; "2"; "--save"; full ]))
            Expect.equal (count "epoch " lines) 2 (sprintf "one progress line per epoch, from rank 0 only:\n%s" (String.Join("\n", lines)))
            Expect.equal (count "test accuracy:" lines) 1 "one test accuracy, from rank 0 only"
            Expect.equal (count "Data-parallel on 2 ranks" lines) 1 "the trainer says it runs data-parallel"
            Expect.equal (count "All ranks hold the same state." lines) 1 "and that the ranks ended in sync"
            let accuracy = lines |> Array.find (fun l -> l.StartsWith "test accuracy:") |> fun l -> float (l.Substring 14)
            Expect.isGreaterThan accuracy 0.9 "the MLP learns the digits in 2 epochs"
            finished (Launch.digits 2 limit (common @ [ "--epochs"; "2"; "--stop-after"; "1"; "--save"; first ])) |> ignore
            let lines = finished (Launch.digits 2 limit (common @ [ "--epochs"; "2"; "--resume"; first; "--save"; resumed ]))
            Expect.equal (count "epoch  2/2" lines) 1 "the resumed run trains epoch 2 only"
            Expect.equal (count "epoch  1/2" lines) 0 "and not epoch 1 again"
            let a, b = fst (Checkpoint.load full), fst (Checkpoint.load resumed)
            Expect.sequenceEqual (State.keys b) (State.keys a) "same keys"
            for k in State.keys a do
                Expect.isTrue (sameBits b.[k] a.[k]) (sprintf "'%s' is the same after resuming as after 2 epochs in one go" k)
        }

        test "a checkpoint that rank 0 cannot read stops every rank with the error" {
            let missing = Path.Combine(Launch.folder "digits-missing", "none.safetensors")
            let job = Launch.digits 2 limit [ "--model"; "mlp"; "--epochs"; "1"; "--resume"; missing ]
            if job.TimedOut then failtestf "the trainer hung after rank 0 failed; killed after %.0f s. Its output:\n%s" job.Elapsed.TotalSeconds job.Output
            Expect.notEqual job.ExitCode 0 "the job fails"
            Expect.stringContains job.Output missing "the error names the file"
            Expect.stringContains job.Output "Rank 0 of 2: exiting with code 1; aborting the MPI job" "rank 0 aborts the job"
            Expect.isLessThan job.Elapsed.TotalSeconds 90.0 "within 90 s"
        }
    ]
