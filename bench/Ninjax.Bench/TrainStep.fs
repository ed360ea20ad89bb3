/// One training step of each workload (Workloads.fs): Ninjax, donating and not, against its
/// hand-written TorchSharp twin, side by side in one BenchmarkDotNet run, so that the Ratio column
/// compares each Ninjax step with the twin of its own workload. Both frameworks run on one
/// intra-op thread, as the digits trainer does by default: on this shared 2-core machine a second
/// OpenMP thread makes no step faster and the timings vary far more.
module Ninjax.Bench.TrainStep

open BenchmarkDotNet.Attributes

[<MemoryDiagnoser>]
type TrainStepBenchmarks() =
    let mutable workload: Workloads.Workload = Unchecked.defaultof<_>

    /// The workload's name (Workloads.all).
    [<Params("mlp-b8", "mlp-b128", "cnn-b32", "gan-b64")>]
    member val Workload = "" with get, set

    [<GlobalSetup>]
    member this.Setup() =
        let make = Workloads.all () |> List.find (fun (name, _) -> name = this.Workload) |> snd
        workload <- make ()

    [<Benchmark(Baseline = true, Description = "TorchSharp")>]
    member _.TorchSharpStep() = workload.TorchSharp ()

    [<Benchmark(Description = "Ninjax, donated")>]
    member _.NinjaxDonatedStep() = workload.NinjaxDonated ()

    [<Benchmark(Description = "Ninjax")>]
    member _.NinjaxStep() = workload.Ninjax ()
