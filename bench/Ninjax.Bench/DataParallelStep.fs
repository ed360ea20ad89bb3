/// The all-reduce's share of a data-parallel training step (`-- --distributed`, run under
/// `mpirun -np N`; the Bench target runs it with 2 processes). Not BenchmarkDotNet: its
/// adaptive iteration counts would differ between ranks, and every rank must run the same
/// steps. Every rank takes the same number of steps of the digits models (Adam, donating its
/// state, one intra-op thread) on its share of batches of 128; rank 0 reports the median step,
/// the median time inside the all-reduce (waiting for the slower rank included), their ratio,
/// and the same all-reduce run alone (the transfer cost without any waiting).
module Ninjax.Bench.DataParallelStep

open System
open System.Diagnostics
open TorchSharp
open Ninjax

let private median (xs: float[]) = (Array.sort xs).[xs.Length / 2]

/// Times `steps` data-parallel steps of one model after 20 warm-up steps.
let private measure (comm: Communicator) (name: string) (makeModel: Communicator -> Digits.Models.Classifier) (steps: int) =
    let train, _ = Digits.Data.loadBoth (Digits.Data.defaultFolder ())
    let batch = 128L
    let model = makeModel comm
    let state = DataParallel.broadcast comm (Nj.init 0L model.Train State.empty (train.Images.narrow(0L, 0L, 2L), train.Labels.narrow(0L, 0L, 2L)))
    let step = Nj.purifyWith (Options.seeded (DataParallel.seed comm 0L) |> Options.donating) model.TrainShare
    let share = DataParallel.share comm batch
    let mutable state = state
    let stepTimes = ResizeArray()
    let reduceTimes = ResizeArray()
    let clock = Stopwatch()
    let n = train.Labels.size 0
    for i in 1 .. 20 + steps do
        let start = (int64 i * batch) % (n - batch)
        let x = train.Images.narrow(0L, start + share.Start, share.Length)
        let y = train.Labels.narrow(0L, start + share.Start, share.Length)
        let before = comm.Statistics.Elapsed
        clock.Restart()
        let next, metrics = step state (x, y, share.Weight)
        metrics.Loss.ToSingle() |> ignore
        clock.Stop()
        state <- next
        if i > 20 then
            stepTimes.Add clock.Elapsed.TotalMicroseconds
            reduceTimes.Add (comm.Statistics.Elapsed - before).TotalMicroseconds
    let parameters = state |> State.filter (fun k _ -> not (k.StartsWith "model/opt")) |> State.toSeq |> Seq.sumBy (fun (_, t) -> t.numel ())
    // The same all-reduce alone, each after a barrier so that no rank waits for another.
    let buffer = torch.zeros([| parameters + 1L |])
    let alone = ResizeArray()
    for i in 1 .. 20 + steps do
        comm.Barrier()
        clock.Restart()
        comm.AllReduceSum buffer
        clock.Stop()
        if i > 20 then alone.Add clock.Elapsed.TotalMicroseconds
    let stepMedian, reduceMedian = median (stepTimes.ToArray()), median (reduceTimes.ToArray())
    let totalShare = Seq.sum reduceTimes / Seq.sum stepTimes
    if comm.IsRoot then
        printfn "%-5s %10d %12.0f %16.0f %11.1f %% %12.1f %% %22.0f" name parameters stepMedian reduceMedian (100.0 * reduceMedian / stepMedian) (100.0 * totalShare) (median (alone.ToArray()))
    DataParallel.checkInSync comm state

/// Runs the measurement for both digits models and prints the table on rank 0.
let run (steps: int) =
    torch.set_num_threads 1
    let comm = Communicator.World
    if comm.IsRoot then
        printfn ""
        printfn "Data-parallel step at %d processes (%s): Adam, batches of 128 split across ranks, %d steps, one intra-op thread." comm.Size comm.Library steps
        printfn "%-5s %10s %12s %16s %13s %14s %22s" "model" "parameters" "step p50 us" "all-reduce p50 us" "share (p50)" "share (total)" "all-reduce alone p50 us"
    measure comm "mlp" (fun c -> Digits.Models.Mlp([ 256; 256 ], 1e-3, "model", c)) steps
    measure comm "cnn" (fun c -> Digits.Models.Cnn(32, 0.0, Optax.adam 1e-3, 0.0, "model", c)) steps
