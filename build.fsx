// Ninjax.NET build script.
// Usage: dotnet fsi build.fsx [-t TARGET]   (targets: Setup, Build, Test (default), Run, Bench)
#r "nuget: Fake.Core.Target, 5.20.3"

open System
open System.Diagnostics
open System.IO
open Fake.Core

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

/// Project executed by the `Run` target (e.g. later: a digits trainer).
let runProject = "examples/Digits"
let solution = "Ninjax.sln"
let configuration = "Release"
let root = __SOURCE_DIRECTORY__

// FAKE context for running Fake.Core.Target under plain `dotnet fsi`.
fsi.CommandLineArgs
|> Array.skip 1
|> Array.toList
|> Context.FakeExecutionContext.Create false "build.fsx"
|> Context.RuntimeContext.Fake
|> Context.setExecutionContext

// ---------------------------------------------------------------------------
// Process helpers
// ---------------------------------------------------------------------------

/// Runs a program with inherited stdout/stderr in the repo root; returns its exit code.
let exec (program: string) (args: string list) (env: (string * string) list) : int =
    let psi = ProcessStartInfo(program, WorkingDirectory = root, UseShellExecute = false)
    args |> List.iter psi.ArgumentList.Add
    env |> List.iter (fun (k, v) -> psi.Environment.[k] <- v)
    Trace.tracefn "> %s %s" program (String.Join(" ", args))
    use p = Process.Start psi
    p.WaitForExit()
    p.ExitCode

/// Runs a program and fails the current target on a non-zero exit code.
let run program args =
    let rc = exec program args []
    if rc <> 0 then
        failwithf "'%s %s' failed with exit code %d" program (String.Join(" ", args)) rc

// ---------------------------------------------------------------------------
// Test suites
// ---------------------------------------------------------------------------

type Counts = { Passed: int; Failed: int; Skipped: int }

/// A test suite. `Run` gets a fresh (non-existent) summary file path and returns the exit code;
/// `ReadCounts` gets the same path afterwards and returns the counts, or None if there are none.
type Suite =
    { Name: string
      Run: string -> int
      ReadCounts: string -> Counts option }

/// Parses a `passed=N failed=N skipped=N` summary file.
let readKeyValueSummary (path: string) : Counts option =
    if not (File.Exists path) then None
    else
        let pairs =
            File.ReadAllText(path).Split([| ' '; '\t'; '\r'; '\n' |], StringSplitOptions.RemoveEmptyEntries)
            |> Array.choose (fun kv ->
                match kv.Split('=') with
                | [| k; v |] ->
                    match Int32.TryParse v with
                    | true, n -> Some(k.Trim().ToLowerInvariant(), n)
                    | _ -> None
                | _ -> None)
            |> Map.ofArray
        match pairs.TryFind "passed", pairs.TryFind "failed" with
        | Some p, Some f ->
            Some { Passed = p; Failed = f; Skipped = defaultArg (pairs.TryFind "skipped") 0 }
        | _ -> None

/// An Expecto test exe that writes its summary to $NINJAX_TEST_SUMMARY (see tests/Ninjax.Tests/Main.fs).
let expectoSuiteWith name project (args: string list) (env: (string * string) list) =
    { Name = name
      Run = fun summary ->
          exec "dotnet" ([ "run"; "--project"; project; "-c"; configuration; "--no-build"; "--" ] @ args)
               (("NINJAX_TEST_SUMMARY", summary) :: env)
      ReadCounts = readKeyValueSummary }

let expectoSuite name project = expectoSuiteWith name project [] []

/// Reads the counters of a Visual Studio test results (.trx) file, as `dotnet test --logger trx` writes it.
/// Errored, timed-out and aborted tests count as failed; tests not executed count as skipped.
let readTrxCounts (path: string) : Counts option =
    if not (File.Exists path) then None
    else
        System.Xml.Linq.XDocument.Load(path).Descendants()
        |> Seq.tryFind (fun e -> e.Name.LocalName = "Counters")
        |> Option.map (fun counters ->
            let count name =
                match counters.Attribute(System.Xml.Linq.XName.Get name) with
                | null -> 0
                | a -> int a.Value
            { Passed = count "passed"
              Failed = count "failed" + count "error" + count "timeout" + count "aborted"
              Skipped = count "notExecuted" })

/// A VSTest project (xunit) run by `dotnet test`, its counts read from the TRX file it writes.
let dotnetTestSuite name project =
    { Name = name
      Run = fun summary ->
          exec "dotnet" [ "test"; project; "-c"; configuration; "--no-build"; "--logger"; sprintf "trx;LogFileName=%s" summary ] []
      ReadCounts = readTrxCounts }

/// All suites run by the `Test` target. Add new suites (xunit, notebooks, ...) here.
let suites: Suite list =
    [ expectoSuite "Ninjax.Tests (Expecto)" "tests/Ninjax.Tests"
      // Measures the whole process's memory, so it runs alone in a process of its own.
      expectoSuiteWith "Ninjax.Tests memory (Expecto)" "tests/Ninjax.Tests" [ "--filter-test-list"; "memory" ] [ "NINJAX_MEMORY_TEST", "1" ]
      dotnetTestSuite "Ninjax.CSharp.Tests (xunit)" "tests/Ninjax.CSharp.Tests" ]

/// Final `N passed, N failed` line; printed as the very last line of output.
let mutable finalLine: string option = None

// ---------------------------------------------------------------------------
// Targets
// ---------------------------------------------------------------------------

Target.create "Setup" (fun _ ->
    run "dotnet" [ "tool"; "restore" ]
    run "dotnet" [ "paket"; "restore" ]
    run "bash" [ "build/setup-native.sh" ])

Target.create "Build" (fun _ ->
    run "dotnet" [ "build"; solution; "-c"; configuration ])

Target.create "Test" (fun _ ->
    let results =
        suites
        |> List.map (fun suite ->
            let summary = Path.Combine(Path.GetTempPath(), sprintf "ninjax-test-%s.txt" (Guid.NewGuid().ToString("N")))
            let rc =
                try suite.Run summary
                with e ->
                    Trace.traceErrorfn "Suite '%s' could not be started: %s" suite.Name e.Message
                    -1
            let counts =
                try suite.ReadCounts summary
                with e ->
                    Trace.traceErrorfn "Suite '%s': could not read summary: %s" suite.Name e.Message
                    None
            try File.Delete summary with _ -> ()
            let counts, ok =
                match counts with
                | None ->
                    Trace.traceErrorfn "Suite '%s' crashed without a summary (exit code %d); counting it as 1 failed." suite.Name rc
                    { Passed = 0; Failed = 1; Skipped = 0 }, false
                | Some c when rc <> 0 && c.Failed = 0 ->
                    Trace.traceErrorfn "Suite '%s' exited with code %d but reported no failures; counting it as 1 failed." suite.Name rc
                    { c with Failed = 1 }, false
                | Some c -> c, (rc = 0 && c.Failed = 0)
            Trace.tracefn "Suite '%s': %d passed, %d failed, %d skipped (exit code %d)"
                suite.Name counts.Passed counts.Failed counts.Skipped rc
            suite.Name, counts, ok)
    let passed = results |> List.sumBy (fun (_, c, _) -> c.Passed)
    let failed = results |> List.sumBy (fun (_, c, _) -> c.Failed)
    finalLine <- Some(sprintf "%d passed, %d failed" passed failed)
    let failedSuites = results |> List.filter (fun (_, _, ok) -> not ok) |> List.map (fun (n, _, _) -> n)
    if not failedSuites.IsEmpty || failed > 0 then
        failwithf "Test suites failed: %s" (String.Join(", ", failedSuites)))

Target.create "Bench" (fun _ ->
    run "dotnet" [ "run"; "--project"; "bench/Ninjax.Bench"; "-c"; configuration; "--no-build" ])

Target.create "Run" (fun _ ->
    run "dotnet" [ "run"; "--project"; runProject; "-c"; configuration; "--no-build" ])

open Fake.Core.TargetOperators

"Setup" ==> "Build" |> ignore
"Build" ==> "Test" |> ignore
"Build" ==> "Run" |> ignore
"Build" ==> "Bench" |> ignore

let exitCode =
    try
        Target.runOrDefaultWithArguments "Test"
        0
    with e ->
        eprintfn "Build failed: %s" e.Message
        1

finalLine |> Option.iter (fun line -> Console.Out.WriteLine line)
Console.Out.Flush()
exit exitCode
