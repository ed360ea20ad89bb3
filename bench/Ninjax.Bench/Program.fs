/// Runs the benchmarks side by side and prints the ratios the README quotes.
module Ninjax.Bench.Program

open System
open BenchmarkDotNet.Configs
open BenchmarkDotNet.Jobs
open BenchmarkDotNet.Order
open BenchmarkDotNet.Reports
open BenchmarkDotNet.Running
open BenchmarkDotNet.Toolchains.InProcess.Emit

/// The mean time of the benchmark whose method and parameter match (NaN when it did not run,
/// for example under a --filter).
let private mean (summary: Summary) (methodName: string) (parameter: string) (value: obj) : float =
    summary.Reports
    |> Seq.tryFind (fun r ->
        r.BenchmarkCase.Descriptor.WorkloadMethod.Name = methodName
        && string (r.BenchmarkCase.Parameters.[parameter]) = string value
        && not (isNull r.ResultStatistics))
    |> Option.map (fun r -> r.ResultStatistics.Mean)
    |> Option.defaultValue nan

/// Runs the cases in BenchmarkDotNet's order, or in the reverse order, so that over several
/// rounds a machine that drifts slower or faster favours neither side of a ratio.
type private Alternating(reverse: bool) =
    inherit DefaultOrderer(SummaryOrderPolicy.Default, MethodOrderPolicy.Declared, JobOrderPolicy.Default)
    override _.GetExecutionOrder(cases, rules) =
        let order = base.GetExecutionOrder(cases, rules)
        if reverse then Seq.rev order else order

/// The median of a non-empty list (the mean of the middle two for an even count).
let private median (xs: float list) =
    let sorted = List.sort xs |> Array.ofList
    let n = sorted.Length
    if n % 2 = 1 then sorted.[n / 2] else (sorted.[n / 2 - 1] + sorted.[n / 2]) / 2.0

/// How many times the training-step benchmarks run, alternating their order.
[<Literal>]
let Rounds = 8

/// A diagnostic beside the benchmarks (`-- --interleaved`): the same three training steps, taken
/// in turn one step at a time and each timed alone, so that every step of one kind has steps of
/// the others right beside it in time. Prints each step's 25th percentile and median, and the
/// ratios of the medians. Not a BenchmarkDotNet run: use it to see a difference of a few percent
/// that drift between BenchmarkDotNet's cases hides.
let private interleaved (steps: int) =
    for batch in [ 8; 128 ] do
        let bench = TrainStep.TrainStepBenchmarks(BatchSize = batch)
        bench.Setup()
        let kinds: (string * (unit -> float32))[] =
            [| "TorchSharp", bench.TorchSharpStep; "Ninjax, donated", bench.NinjaxDonatedStep; "Ninjax", bench.NinjaxStep |]
        let times = kinds |> Array.map (fun _ -> ResizeArray<float>())
        let clock = Diagnostics.Stopwatch()
        for i in 1..steps do
            for k in 0 .. kinds.Length - 1 do
                clock.Restart()
                snd kinds.[k] () |> ignore
                if i > steps / 10 then times.[k].Add clock.Elapsed.TotalMicroseconds
        let sorted = times |> Array.map (fun xs -> Array.sort (xs.ToArray()))
        let at (q: float) (xs: float[]) = xs.[int (q * float (xs.Length - 1))]
        let baseline = at 0.5 sorted.[0]
        for k in 0 .. kinds.Length - 1 do
            printfn "batch %3d  %-16s p25 %8.1f us  median %8.1f us  median ratio %.3f" batch (fst kinds.[k]) (at 0.25 sorted.[k]) (at 0.5 sorted.[k]) (at 0.5 sorted.[k] / baseline)

/// The BenchmarkDotNet runs and the ratio lines the README quotes.
let private benchmarks (argv: string[]) =
    // In-process: no generated project to build, and the Paket-restored packages are used as is.
    // Many short iterations (100 ms) rather than a few long ones: BenchmarkDotNet measures one
    // case after another, so on this shared machine the cases it compares should lie close
    // together in time, and the mean should rest on many samples.
    let job =
        Job.ShortRun
            .WithToolchain(InProcessEmitToolchain.Instance)
            .WithIterationTime(Perfolizer.Horology.TimeInterval.FromMilliseconds 100.0)
            .WithWarmupCount(3)
            .WithIterationCount(15)
    let config (reverse: bool) =
        ManualConfig.Create(DefaultConfig.Instance).AddJob(job).WithOptions(ConfigOptions.DisableOptimizationsValidator).WithOrderer(Alternating reverse)
    // The machine's speed drifts by more than the 5% the targets ask about between cases run a
    // minute apart, so the training steps run in several rounds, each a side-by-side run with its
    // own ratios, in alternating order; the ratio reported is the median over the rounds.
    let rounds = [ for r in 1..Rounds -> BenchmarkRunner.Run<TrainStep.TrainStepBenchmarks>(config (r % 2 = 0), argv) ]
    let pureCalls = BenchmarkRunner.Run<PureCall.PureCallBenchmarks>(config false, argv)
    let ratios methodName batch =
        rounds |> List.map (fun train -> mean train methodName "BatchSize" batch / mean train "TorchSharpStep" "BatchSize" batch)
    let pureAt (n: int) = mean pureCalls "PureCall" "Entries" n
    let show (label: string) methodName batch =
        let rs = ratios methodName batch
        printfn "overhead ratio %s per round: %s" label (rs |> List.map (sprintf "%.2f") |> String.concat " ")
        median rs
    printfn ""
    printfn "pure call ratio 100000/10 entries: %.2f" (pureAt 100000 / pureAt 10)
    let plain128 = show "bs128, without donation," "NinjaxStep" 128
    let plain8 = show "bs8, without donation," "NinjaxStep" 8
    // The digits trainer's step (donating its state) is the one the targets are about.
    let donated128 = show "bs128" "NinjaxDonatedStep" 128
    let donated8 = show "bs8" "NinjaxDonatedStep" 8
    printfn ""
    printfn "The same steps taken in turn, one at a time (a diagnostic, not BenchmarkDotNet):"
    interleaved 1500
    printfn ""
    printfn "overhead ratio bs128, without donation: %.2f" plain128
    printfn "overhead ratio bs8, without donation: %.2f" plain8
    printfn "overhead ratio bs128: %.2f" donated128
    printfn "overhead ratio bs8: %.2f" donated8

[<EntryPoint>]
let main argv =
    if Array.contains "--interleaved" argv then interleaved 3000 else benchmarks argv
    0
