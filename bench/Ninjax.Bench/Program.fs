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

/// How many times the training-step benchmarks run by default, alternating their order
/// (`--rounds N` changes it).
[<Literal>]
let DefaultRounds = 8

/// The steps of one kind in a row in the interleaved diagnostic's blocked order.
[<Literal>]
let Block = 10

/// A diagnostic beside the benchmarks (`-- --interleaved [workload ...]`): each workload's three
/// training steps taken in turn and each step timed alone, so that every kind of step is measured
/// right beside the others in time and a machine that drifts slower or faster favours none. Two
/// orders: one step of each kind at a time (every step then starts with the caches the other two
/// kinds left, which makes memory-bound work such as an optimizer step look slower than in a
/// training loop), and blocks of `Block` steps of one kind at a time, timing all but the first step
/// of each block (the caches then hold what the kind's own previous step left, as in a training
/// loop, while the blocks alternate every few tens of milliseconds). Prints each kind's 25th
/// percentile and median and the ratios of the medians, in both orders. Not a BenchmarkDotNet run:
/// use it to see a difference of a few percent that drift between BenchmarkDotNet's cases hides.
let private interleaved (steps: int) (names: string list) : (string * string * float) list =
    let chosen = if names.IsEmpty then Workloads.all () else names |> List.map (fun n -> n, Workloads.find n)
    [ for name, make in chosen do
          let w = make ()
          let kinds: (string * (unit -> float32))[] = [| "TorchSharp", w.TorchSharp; "Ninjax, donated", w.NinjaxDonated; "Ninjax", w.Ninjax |]
          let clock = Diagnostics.Stopwatch()
          let timeStep (k: int) =
              clock.Restart()
              snd kinds.[k] () |> ignore
              clock.Elapsed.TotalMicroseconds
          let report (order: string) (times: ResizeArray<float>[]) =
              let sorted = times |> Array.map (fun xs -> Array.sort (xs.ToArray()))
              let at (q: float) (xs: float[]) = xs.[int (q * float (xs.Length - 1))]
              let baseline = at 0.5 sorted.[0]
              [ for k in 0 .. kinds.Length - 1 do
                    let ratio = at 0.5 sorted.[k] / baseline
                    printfn "%-9s %-16s %-9s p25 %8.1f us  median %8.1f us  median ratio %.3f" name (fst kinds.[k]) order (at 0.25 sorted.[k]) (at 0.5 sorted.[k]) ratio
                    yield name, fst kinds.[k] + ", " + order, ratio ]
          // One step of each kind at a time, after a tenth as many warm-up rounds.
          let single = kinds |> Array.map (fun _ -> ResizeArray<float>())
          for i in 1..steps do
              for k in 0 .. kinds.Length - 1 do
                  let t = timeStep k
                  if i > steps / 10 then single.[k].Add t
          yield! report "1 by 1" single
          // Blocks of Block steps of one kind; the first step after a switch is not timed.
          let blocked = kinds |> Array.map (fun _ -> ResizeArray<float>())
          for _ in 1 .. max 1 (steps / Block) do
              for k in 0 .. kinds.Length - 1 do
                  timeStep k |> ignore
                  for _ in 2..Block do
                      blocked.[k].Add(timeStep k)
          yield! report "in blocks" blocked ]

/// A diagnostic for profilers (`-- --profile NAME KIND STEPS`): one workload's step of one kind
/// (twin, donated or plain) taken STEPS times after a tenth as many warm-up steps, nothing else, so
/// that a sampling profiler attached to the process sees only that step. Prints the median step.
let private profile (name: string) (kind: string) (steps: int) =
    let make = Workloads.find name
    let w = make ()
    let step =
        match kind with
        | "twin" -> w.TorchSharp
        | "donated" -> w.NinjaxDonated
        | "plain" -> w.Ninjax
        | _ -> failwithf "The kind of step is twin, donated or plain; got '%s'." kind
    for _ in 1 .. max 1 (steps / 10) do step () |> ignore
    let times = Array.zeroCreate steps
    let clock = Diagnostics.Stopwatch()
    for i in 0 .. steps - 1 do
        clock.Restart()
        step () |> ignore
        times.[i] <- clock.Elapsed.TotalMicroseconds
    printfn "%s %s: median %.1f us over %d steps" name kind (Array.sort (Array.copy times)).[steps / 2] steps
    // The medians of each tenth of the run, in order: a step that slows down as the run goes on
    // (something accumulating) shows here.
    let tenth = max 1 (steps / 10)
    let windows = [ for w in 0 .. steps / tenth - 1 -> (Array.sort times.[w * tenth .. (w + 1) * tenth - 1]).[tenth / 2] ]
    printfn "  by tenths: %s" (windows |> List.map (sprintf "%.0f") |> String.concat " ")

/// The BenchmarkDotNet runs and the ratio lines the README quotes.
let private benchmarks (rounds: int) (argv: string[]) =
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
    // The machine's speed drifts by more than the differences in question between cases run a
    // minute apart, so the training steps run in several rounds, each a side-by-side run with its
    // own ratios, in alternating order; the ratio reported is the median over the rounds.
    let rounds = [ for r in 1..rounds -> BenchmarkRunner.Run<TrainStep.TrainStepBenchmarks>(config (r % 2 = 0), argv) ]
    let pureCalls = BenchmarkRunner.Run<PureCall.PureCallBenchmarks>(config false, argv)
    let ratios methodName workload =
        rounds |> List.map (fun train -> mean train methodName "Workload" workload / mean train "TorchSharpStep" "Workload" workload)
    let pureAt (n: int) = mean pureCalls "PureCall" "Entries" n
    let workloads = Workloads.all () |> List.map fst
    printfn ""
    let medians =
        [ for name in workloads do
              for label, methodName in [ "donating", "NinjaxDonatedStep"; "without donation", "NinjaxStep" ] do
                  let rs = ratios methodName name
                  printfn "overhead ratio %s %s per round: %s" name label (rs |> List.map (sprintf "%.2f") |> String.concat " ")
                  yield sprintf "%s %s" name label, median rs ]
    printfn ""
    printfn "The same steps taken in turn, one at a time and in blocks (a diagnostic, not BenchmarkDotNet):"
    let inTurn = interleaved 2000 []
    printfn ""
    for name, kind, ratio in inTurn do
        if kind.StartsWith "Ninjax" then printfn "in-turn ratio %s %s: %.2f" name (kind.Replace("Ninjax, donated", "donating").Replace("Ninjax", "without donation")) ratio
    printfn ""
    printfn "pure call ratio 100000/10 entries: %.2f" (pureAt 100000 / pureAt 10)
    for name, ratio in medians do
        printfn "overhead ratio %s: %.2f" name ratio

[<EntryPoint>]
let main argv =
    // The library's process-wide tunings (MKL's kernels among them) before any diagnostic's first
    // product, as a Ninjax program has them after its first purified call; printed so that every
    // figure comes with the setting it was measured under.
    Ninjax.Tuning.apply ()
    for line in Ninjax.Tuning.describe () do
        printfn "tuning: %s" line
    match List.ofArray argv with
    | "--distributed" :: rest ->
        // Under mpirun: the all-reduce's share of a data-parallel step.
        match rest with
        | [ "--steps"; n ] -> DataParallelStep.run (int n)
        | _ -> DataParallelStep.run 300
    | [ "--layouts" ] -> MatmulLayouts.run ()
    | "--interleaved" :: names -> interleaved 3000 names |> ignore
    | [ "--profile"; name; kind; steps ] -> profile name kind (int steps)
    | "--rounds" :: n :: rest -> benchmarks (int n) (Array.ofList rest)
    | _ -> benchmarks DefaultRounds argv
    0
