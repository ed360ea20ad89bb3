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
    // Many short iterations (100 ms) rather than a few long ones: BenchmarkDotNet measures one
    // case after another, so on this shared machine the cases it compares should lie close
    // together in time, and the mean should rest on many samples.
    let job =
        Job.ShortRun
            .WithToolchain(InProcessEmitToolchain.Instance)
            .WithIterationTime(Perfolizer.Horology.TimeInterval.FromMilliseconds 100.0)
            .WithWarmupCount(5)
            .WithIterationCount(40)
    let config = ManualConfig.Create(DefaultConfig.Instance).AddJob(job).WithOptions(ConfigOptions.DisableOptimizationsValidator)
    let train = BenchmarkRunner.Run<TrainStep.TrainStepBenchmarks>(config, argv)
    let pureCalls = BenchmarkRunner.Run<PureCall.PureCallBenchmarks>(config, argv)
    let ratioOf methodName batch = mean train methodName "BatchSize" batch / mean train "TorchSharpStep" "BatchSize" batch
    let pureAt (n: int) = mean pureCalls "PureCall" "Entries" n
    printfn ""
    printfn "pure call ratio 100000/10 entries: %.2f" (pureAt 100000 / pureAt 10)
    printfn "overhead ratio bs128, without donation: %.2f" (ratioOf "NinjaxStep" 128)
    printfn "overhead ratio bs8, without donation: %.2f" (ratioOf "NinjaxStep" 8)
    // The digits trainer's step (donating its state) is the one the targets are about.
    printfn "overhead ratio bs128: %.2f" (ratioOf "NinjaxDonatedStep" 128)
    printfn "overhead ratio bs8: %.2f" (ratioOf "NinjaxDonatedStep" 8)
    0
