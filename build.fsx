// Ninjax.NET build script.
// Usage: dotnet fsi build.fsx [-t TARGET]   (targets: Setup, Build, Test (default), Run, RunDistributed, Bench, Docs, ApproveApi)
#r "nuget: Fake.Core.Target, 5.20.3"

open System
open System.Diagnostics
open System.IO
open Fake.Core

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

/// The main job (the `Run` target): the digits classifier, saved for the GAN, which it scores.
let classifierProject = "examples/Digits"
let ganProject = "examples/Gan"
let classifierCheckpoint = "artifacts/digits.safetensors"
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

/// Runs a program with inherited stdout/stderr in a given directory; returns its exit code.
let execIn (dir: string) (program: string) (args: string list) : int =
    let psi = ProcessStartInfo(program, WorkingDirectory = dir, UseShellExecute = false)
    args |> List.iter psi.ArgumentList.Add
    Trace.tracefn "> (in %s) %s %s" dir program (String.Join(" ", args))
    use p = Process.Start psi
    p.WaitForExit()
    p.ExitCode

/// Writes a `passed=N failed=N` summary from a list of named results, reporting each failure.
let writeSummary (summary: string) (results: (string * Result<unit, string>) list) : int =
    results
    |> List.iter (fun (name, r) ->
        match r with
        | Ok() -> Trace.tracefn "PASSED %s" name
        | Error why -> Trace.traceErrorfn "FAILED %s: %s" name why)
    let failed = results |> List.filter (fun (_, r) -> Result.isError r) |> List.length
    File.WriteAllText(summary, sprintf "passed=%d failed=%d" (results.Length - failed) failed)
    if failed = 0 then 0 else 1

/// Where the executed notebooks (with their outputs) are written.
let notebookOutputs = Path.Combine(root, "artifacts", "notebooks")

/// What an executed notebook shows: the error outputs of its cells, and whether its last code cell
/// printed "All checks passed" (every notebook ends with a cell that checks what it computed).
let inspectNotebook (path: string) : Result<unit, string> =
    use doc = System.Text.Json.JsonDocument.Parse(File.ReadAllText path)
    let codeCells =
        [ for c in doc.RootElement.GetProperty("cells").EnumerateArray() do
              if c.GetProperty("cell_type").GetString() = "code" then yield c ]
    let outputs (cell: System.Text.Json.JsonElement) = [ for o in cell.GetProperty("outputs").EnumerateArray() -> o ]
    let errors =
        codeCells
        |> List.collect outputs
        |> List.filter (fun o -> o.GetProperty("output_type").GetString() = "error")
        |> List.map (fun o -> o.GetProperty("evalue").GetString().Split('\n').[0])
    let printed (cell: System.Text.Json.JsonElement) =
        outputs cell
        |> List.filter (fun o -> o.GetProperty("output_type").GetString() = "stream")
        |> List.collect (fun o -> [ for line in o.GetProperty("text").EnumerateArray() -> line.GetString() ])
        |> String.concat ""
    match errors, List.tryLast codeCells with
    | e :: _, _ -> Error(sprintf "%d cell(s) failed; first: %s" errors.Length e)
    | [], None -> Error "the notebook has no code cells"
    | [], Some last when not ((printed last).Contains "All checks passed") ->
        Error "its last cell did not print 'All checks passed'"
    | [], Some _ -> Ok()

/// Runs every notebook in notebooks/ headless with dotnet-repl (against the libraries built from
/// this checkout) and every F# script in examples/ with dotnet fsi; one count each.
let notebooksSuite =
    { Name = "Notebooks and scripts"
      Run = fun summary ->
          Directory.CreateDirectory notebookOutputs |> ignore
          let notebooks =
              Directory.GetFiles(Path.Combine(root, "notebooks"), "*.ipynb") |> Array.sort |> List.ofArray
              |> List.map (fun nb ->
                  let name = Path.GetFileName nb
                  let executed = Path.Combine(notebookOutputs, name)
                  if File.Exists executed then File.Delete executed
                  let rc =
                      execIn (Path.GetDirectoryName nb) "dotnet"
                          [ "repl"; "--run"; nb; "--exit-after-run"; "--output-format"; "ipynb"; "--output-path"; executed ]
                  let result =
                      if not (File.Exists executed) then Error(sprintf "dotnet repl wrote no output (exit code %d)" rc)
                      else
                          match inspectNotebook executed, rc with
                          | Error why, _ -> Error why
                          | Ok(), 0 -> Ok()
                          | Ok(), _ -> Error(sprintf "dotnet repl exited with code %d" rc)
                  "notebooks/" + name, result)
          let scripts =
              Directory.GetFiles(Path.Combine(root, "examples"), "*.fsx") |> Array.sort |> List.ofArray
              |> List.map (fun script ->
                  let rc = exec "dotnet" [ "fsi"; script ] []
                  "examples/" + Path.GetFileName script, (if rc = 0 then Ok() else Error(sprintf "dotnet fsi exited with code %d" rc)))
          writeSummary summary (notebooks @ scripts)
      ReadCounts = readKeyValueSummary }

/// A nuget.config that puts a local folder before the sources configured on the machine.
let nugetConfig (feed: string) =
    String.concat "\n"
        [ """<?xml version="1.0" encoding="utf-8"?>"""
          "<configuration>"
          "  <packageSources>"
          sprintf """    <add key="ninjax-local" value="%s" />""" feed
          "  </packageSources>"
          "</configuration>" ]

/// A console app that references the Ninjax.Fs package and TorchSharp-cpu, as a user's would.
let appProject (version: string) =
    String.concat "\n"
        [ """<Project Sdk="Microsoft.NET.Sdk">"""
          "  <PropertyGroup>"
          "    <OutputType>Exe</OutputType>"
          "    <TargetFramework>net10.0</TargetFramework>"
          "  </PropertyGroup>"
          "  <ItemGroup>"
          """    <Compile Include="Program.fs" />"""
          sprintf """    <PackageReference Include="Ninjax.Fs" Version="%s" />""" version
          """    <PackageReference Include="TorchSharp-cpu" Version="0.107.0" />"""
          "  </ItemGroup>"
          "</Project>" ]

/// Packs Ninjax.Fs and Ninjax.CSharp into a local folder, installs Ninjax.Fs from it (with
/// TorchSharp-cpu from the registry) into a fresh console project outside the repository, and runs
/// the F# Quickstart there: the bias starts at zero and the loss falls.
let packageSuite =
    { Name = "Packages (install and run the Quickstart)"
      Run = fun summary ->
          let work = Path.Combine(Path.GetTempPath(), "ninjax-package-test-" + Guid.NewGuid().ToString("N").Substring(0, 8))
          let feed = Path.Combine(work, "feed")
          let app = Path.Combine(work, "app")
          // A version of its own, so that neither the global packages folder nor an earlier run
          // can hand the app another build of the package.
          let version = sprintf "0.1.0-local.%s" (DateTime.UtcNow.ToString "yyyyMMddHHmmss")
          Directory.CreateDirectory app |> ignore
          let result =
              try
                  let pack project =
                      exec "dotnet" [ "pack"; project; "-c"; configuration; "--no-build"; "-o"; feed; sprintf "-p:PackageVersion=%s" version ] []
                  if pack "src/Ninjax.Fs" <> 0 || pack "src/Ninjax.CSharp" <> 0 then Error "dotnet pack failed"
                  else
                      File.WriteAllText(Path.Combine(app, "nuget.config"), nugetConfig feed)
                      File.WriteAllText(Path.Combine(app, "App.fsproj"), appProject version)
                      File.Copy(Path.Combine(root, "examples", "Quickstart.Fs", "Program.fs"), Path.Combine(app, "Program.fs"))
                      if execIn app "dotnet" [ "build"; "-c"; "Release" ] <> 0 then Error "the console app did not build"
                      else
                          let psi = ProcessStartInfo("dotnet", WorkingDirectory = app, UseShellExecute = false, RedirectStandardOutput = true)
                          [ "run"; "-c"; "Release"; "--no-build" ] |> List.iter psi.ArgumentList.Add
                          use p = Process.Start psi
                          let output = p.StandardOutput.ReadToEnd()
                          p.WaitForExit()
                          printf "%s" output
                          let lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries) |> Array.map (fun l -> l.Trim())
                          let losses =
                              lines
                              |> Array.filter (fun l -> l.StartsWith "Loss:")
                              |> Array.map (fun l -> Double.Parse(l.Substring 5, Globalization.CultureInfo.InvariantCulture))
                          if p.ExitCode <> 0 then Error(sprintf "the console app exited with code %d" p.ExitCode)
                          elif lines.Length = 0 || lines.[0] <> "[0, 0, 0]" then Error(sprintf "the initial bias is not [0, 0, 0]: %A" (Array.tryHead lines))
                          elif losses.Length < 2 then Error(sprintf "the app printed %d losses" losses.Length)
                          elif not (Array.last losses < Array.head losses) then Error(sprintf "the loss did not fall: %A" losses)
                          else Ok()
              with e -> Error e.Message
          // Leave nothing behind: the app, the feed, and this version in the global packages folder.
          try Directory.Delete(work, true) with _ -> ()
          let globalPackages =
              match Environment.GetEnvironmentVariable "NUGET_PACKAGES" with
              | null | "" -> Path.Combine(Environment.GetFolderPath Environment.SpecialFolder.UserProfile, ".nuget", "packages")
              | dir -> dir
          for id in [ "ninjax.fs"; "ninjax.csharp" ] do
              try Directory.Delete(Path.Combine(globalPackages, id, version), true) with _ -> ()
          writeSummary summary [ "Ninjax.Fs package: install and run the Quickstart", result ]
      ReadCounts = readKeyValueSummary }

/// All suites run by the `Test` target. Add new suites (xunit, notebooks, ...) here.
let suites: Suite list =
    [ expectoSuite "Ninjax.Tests (Expecto)" "tests/Ninjax.Tests"
      // Measures the whole process's memory, so it runs alone in a process of its own.
      expectoSuiteWith "Ninjax.Tests memory (Expecto)" "tests/Ninjax.Tests" [ "--filter-test-list"; "memory" ] [ "NINJAX_MEMORY_TEST", "1" ]
      dotnetTestSuite "Ninjax.CSharp.Tests (xunit)" "tests/Ninjax.CSharp.Tests"
      // Data-parallel training: each test starts an `mpirun -np 2` job of its own.
      expectoSuite "Ninjax.Distributed.Tests (Expecto, mpirun -np 2)" "tests/Ninjax.Distributed.Tests"
      notebooksSuite
      packageSuite ]

/// Final `N passed, N failed` line; printed as the very last line of output.
let mutable finalLine: string option = None

// ---------------------------------------------------------------------------
// Targets
// ---------------------------------------------------------------------------

Target.create "Setup" (fun _ ->
    run "dotnet" [ "tool"; "restore" ]
    run "dotnet" [ "paket"; "restore" ]
    run "bash" [ "build/setup-native.sh" ]
    run "bash" [ "build/setup-mpi.sh" ])

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

/// Runs a program in the repo root and returns its exit code and its stdout and stderr, which are
/// also echoed.
let execCapture (program: string) (args: string list) : int * string list =
    let psi = ProcessStartInfo(program, WorkingDirectory = root, UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true)
    args |> List.iter psi.ArgumentList.Add
    Trace.tracefn "> %s %s" program (String.Join(" ", args))
    use p = new Process(StartInfo = psi)
    let lines = Collections.Concurrent.ConcurrentQueue<string>()
    let take (e: DataReceivedEventArgs) = if not (isNull e.Data) then (lines.Enqueue e.Data; Console.WriteLine e.Data)
    p.OutputDataReceived.Add take
    p.ErrorDataReceived.Add take
    p.Start() |> ignore
    p.BeginOutputReadLine()
    p.BeginErrorReadLine()
    p.WaitForExit()
    p.ExitCode, List.ofSeq lines

/// The API reference of both libraries, generated from their XML doc comments by fsdocs into
/// output/. Fails when a public type or member has no doc comment. (Members documented with a
/// one-line summary and no <param> tags are fine: fsdocs lists those parameters separately.)
Target.create "Docs" (fun _ ->
    let rc, lines =
        execCapture "dotnet"
            [ "fsdocs"; "build"; "--clean"; "--input"; "docs/api"; "--output"; "output"
              "--projects"; "src/Ninjax.Fs/Ninjax.Fs.fsproj"; "src/Ninjax.CSharp/Ninjax.CSharp.csproj"
              "--properties"; sprintf "Configuration=%s" configuration; "FsDocsWarnOnMissingDocs=true" ]
    if rc <> 0 then failwithf "fsdocs failed with exit code %d" rc
    let missing = lines |> List.filter (fun l -> l.Contains "missing docs" && not (l.Contains "for parameter"))
    let parameters = lines |> List.filter (fun l -> l.Contains "missing docs for parameter") |> List.length
    Trace.tracefn "API reference written to output/index.html; %d public members without docs; %d parameters without <param> docs." missing.Length parameters
    if not missing.IsEmpty then
        failwithf "%d public types or members have no XML doc comment:\n%s" missing.Length (String.Join("\n", missing)))

/// Rewrites the approved public API snapshots (tests/Ninjax.CSharp.Tests/api/*.approved.txt) from
/// the libraries just built: run it after an intended API change, review the diff, commit it.
Target.create "ApproveApi" (fun _ ->
    let rc =
        exec "dotnet"
            [ "test"; "tests/Ninjax.CSharp.Tests"; "-c"; configuration; "--no-build"; "--filter"; "FullyQualifiedName~PublicApiTests" ]
            [ "NINJAX_APPROVE_API", "1" ]
    if rc <> 0 then failwithf "Approving the API snapshots failed (exit code %d)" rc
    run "git" [ "--no-pager"; "diff"; "--stat"; "--"; "tests/Ninjax.CSharp.Tests/api" ])

/// mpirun's flags for a job on this machine: as root Open MPI needs --allow-run-as-root; ranks
/// are not bound to cores and waiting ranks yield their core (mpi_yield_when_idle), because the
/// cores are shared; more ranks than cores are allowed.
let mpirunOnThisMachine (np: int) =
    (if Environment.UserName = "root" then [ "--allow-run-as-root" ] else [])
    @ [ "--oversubscribe"; "--bind-to"; "none"; "--mca"; "mpi_yield_when_idle"; "1"; "-np"; string np ]

Target.create "Bench" (fun _ ->
    run "dotnet" [ "run"; "--project"; "bench/Ninjax.Bench"; "-c"; configuration; "--no-build" ]
    // The all-reduce's share of a data-parallel step, at 2 processes.
    run "mpirun" (mpirunOnThisMachine 2 @ [ "dotnet"; sprintf "bench/Ninjax.Bench/bin/%s/net10.0/Ninjax.Bench.dll" configuration; "--distributed" ]))

Target.create "Run" (fun _ ->
    run "dotnet" [ "run"; "--project"; classifierProject; "-c"; configuration; "--no-build"; "--"; "--save"; classifierCheckpoint ]
    run "dotnet" [ "run"; "--project"; ganProject; "-c"; configuration; "--no-build"; "--"; "--classifier"; classifierCheckpoint ])

/// The digits trainer data-parallel on 2 processes of this machine (each takes half of every batch).
Target.create "RunDistributed" (fun _ ->
    run "mpirun" (mpirunOnThisMachine 2 @ [ "dotnet"; sprintf "examples/Digits/bin/%s/net10.0/Digits.dll" configuration ]))

open Fake.Core.TargetOperators

"Setup" ==> "Build" |> ignore
"Build" ==> "Test" |> ignore
"Build" ==> "Run" |> ignore
"Build" ==> "RunDistributed" |> ignore
"Build" ==> "Bench" |> ignore
"Build" ==> "Docs" |> ignore
"Build" ==> "ApproveApi" |> ignore

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
