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
let Rounds = 4

[<EntryPoint>]
let main argv =
    // In-process: no generated project to build, and the Paket-restored packages are used as is.
    // Many short iterations (100 ms) rather than a few long ones: BenchmarkDotNet measures one
    // case after another, so on this shared machine the cases it compares should lie close
    // together in time, and the mean should rest on many samples.
    let job =
        Job.ShortRun
            .WithToolchain(InProcessEmitToolchain.Instance)
            .WithIterationTime(Perfolizer.Horology.TimeInterval.FromMilliseconds 100.0)
            .WithWarmupCount(5)
            .WithIterationCount(30)
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
    printfn "overhead ratio bs128, without donation: %.2f" plain128
    printfn "overhead ratio bs8, without donation: %.2f" plain8
    printfn "overhead ratio bs128: %.2f" donated128
    printfn "overhead ratio bs8: %.2f" donated8
    0
