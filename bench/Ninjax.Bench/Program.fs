/// Runs the benchmarks side by side and prints the ratios the README quotes.
module Ninjax.Bench.Program

open System
open BenchmarkDotNet.Configs
open BenchmarkDotNet.Jobs
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

[<EntryPoint>]
let main argv =
    // In-process: no generated project to build, and the Paket-restored packages are used as is.
    let job = Job.ShortRun.WithToolchain(InProcessEmitToolchain.Instance).WithWarmupCount(3).WithIterationCount(15)
    let config = ManualConfig.Create(DefaultConfig.Instance).AddJob(job).WithOptions(ConfigOptions.DisableOptimizationsValidator)
    let train = BenchmarkRunner.Run<TrainStep.TrainStepBenchmarks>(config, argv)
    let pureCalls = BenchmarkRunner.Run<PureCall.PureCallBenchmarks>(config, argv)
    let ratio batch = mean train "NinjaxStep" "BatchSize" batch / mean train "TorchSharpStep" "BatchSize" batch
    let pureAt (n: int) = mean pureCalls "PureCall" "Entries" n
    printfn ""
    printfn "pure call ratio 100000/10 entries: %.2f" (pureAt 100000 / pureAt 10)
    printfn "overhead ratio bs128: %.2f" (ratio 128)
    printfn "overhead ratio bs8: %.2f" (ratio 8)
    0
