/// Test entry point. Must be the last file in compile order.
module Ninjax.Distributed.Tests.Main

open System
open System.IO
open Expecto
open Expecto.Impl

/// Writes `passed=N failed=N skipped=N` (failed includes errored) to $NINJAX_TEST_SUMMARY, if set.
let private writeSummary (summary: TestRunSummary) =
    match Environment.GetEnvironmentVariable "NINJAX_TEST_SUMMARY" with
    | null | "" -> ()
    | path ->
        let failed = List.length summary.failed + List.length summary.errored
        File.WriteAllText(path, sprintf "passed=%d failed=%d skipped=%d\n" (List.length summary.passed) failed (List.length summary.ignored))

[<EntryPoint>]
let main argv =
    match List.ofArray argv with
    | "worker" :: rest -> Worker.run rest
    | _ ->
        // The tests launch mpirun jobs one at a time: each job's two ranks take the two cores.
        let extra = [ CLIArguments.Append_Summary_Handler(SummaryHandler writeSummary); CLIArguments.Sequenced ]
        Tests.runTestsInAssemblyWithCLIArgs extra argv
