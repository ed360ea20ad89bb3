/// Test entry point. Must be the last file in compile order.
module Ninjax.Tests.Main

open System
open System.IO
open Expecto
open Expecto.Impl

/// Environment variable naming the file that receives the machine-readable summary.
[<Literal>]
let SummaryEnvVar = "NINJAX_TEST_SUMMARY"

/// Writes `passed=N failed=N skipped=N` (failed includes errored) to $NINJAX_TEST_SUMMARY, if set.
let private writeSummary (summary: TestRunSummary) =
    match Environment.GetEnvironmentVariable SummaryEnvVar with
    | null | "" -> ()
    | path ->
        let passed = List.length summary.passed
        let failed = List.length summary.failed + List.length summary.errored
        let skipped = List.length summary.ignored
        File.WriteAllText(path, sprintf "passed=%d failed=%d skipped=%d\n" passed failed skipped)

[<EntryPoint>]
let main argv =
    match argv with
    | [| "--write-checkpoint"; path; megabytes |] ->
        // Helper mode for the checkpoint kill test: a child process that is killed while it saves.
        CheckpointTests.writeCheckpointHelper path (int megabytes)
        0
    | [| "--reliability-child"; group |] ->
        // Scenarios that used to end the process, run apart from the test run (issue 12).
        ReliabilityTests.child group
    | _ ->
        // Expecto runs tests on several threads at once; one intra-op thread each keeps libtorch's
        // thread pool from oversubscribing the cores (the tensors here are small).
        TorchSharp.torch.set_num_threads 1
        // The process-wide tunings before any test's first product, so that every run of the
        // suite uses the same MKL kernels whatever order the tests run in.
        Ninjax.Tuning.apply ()
        let extra = [ CLIArguments.Append_Summary_Handler(SummaryHandler writeSummary) ]
        Tests.runTestsInAssemblyWithCLIArgs extra argv
