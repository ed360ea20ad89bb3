/// Starts mpirun jobs of this test program in worker mode and collects what they did.
module Ninjax.Distributed.Tests.Launch

open System
open System.Diagnostics
open System.IO
open System.Runtime.InteropServices
open System.Text

[<DllImport("libc")>]
extern uint32 geteuid()

/// What an mpirun job did.
type Job = { ExitCode: int; Output: string; Elapsed: TimeSpan; TimedOut: bool }

/// mpirun refuses to run as root without --allow-run-as-root; the tests run as whoever runs them.
let rootFlags () = if OperatingSystem.IsLinux() && geteuid () = 0u then [ "--allow-run-as-root" ] else []

/// The arguments that start `np` ranks of a .NET program on this machine: no binding of ranks
/// to cores (other jobs share them), and more ranks than cores allowed.
/// Waiting ranks yield the core (mpi_yield_when_idle): this machine is shared, and a rank that
/// spins while the other computes slows the whole job down many times over.
let mpirunArgs (np: int) =
    rootFlags () @ [ "--oversubscribe"; "--bind-to"; "none"; "--mca"; "mpi_yield_when_idle"; "1"; "-np"; string np ]

/// The dotnet host that runs this test program.
let dotnetHost () =
    match Environment.GetEnvironmentVariable "DOTNET_HOST_PATH" with
    | null | "" ->
        let running = Environment.ProcessPath
        if not (isNull running) && Path.GetFileNameWithoutExtension running = "dotnet" then running else "dotnet"
    | host -> host

/// Runs a program with arguments, environment and a time limit; a job still running at the
/// limit is killed with its whole process tree and reported as timed out.
let start (program: string) (args: string list) (env: (string * string) list) (limit: TimeSpan) : Job =
    let psi = ProcessStartInfo(program, UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true)
    args |> List.iter psi.ArgumentList.Add
    env |> List.iter (fun (k, v) -> psi.Environment.[k] <- v)
    let output = StringBuilder()
    let take (e: DataReceivedEventArgs) = if not (isNull e.Data) then lock output (fun () -> output.AppendLine e.Data |> ignore)
    use p = new Process(StartInfo = psi)
    p.OutputDataReceived.Add take
    p.ErrorDataReceived.Add take
    let clock = Stopwatch.StartNew()
    p.Start() |> ignore
    p.BeginOutputReadLine()
    p.BeginErrorReadLine()
    let finished = p.WaitForExit(int limit.TotalMilliseconds)
    if not finished then
        p.Kill true
        p.WaitForExit()
    p.WaitForExit() // drains the output
    { ExitCode = (if finished then p.ExitCode else -1); Output = lock output (fun () -> output.ToString()); Elapsed = clock.Elapsed; TimedOut = not finished }

/// Runs `np` ranks of this program in worker mode: `mpirun ... dotnet <this dll> worker args`.
let worker (np: int) (env: (string * string) list) (limit: TimeSpan) (args: string list) : Job =
    let dll = typeof<Job>.Assembly.Location
    start "mpirun" (mpirunArgs np @ [ dotnetHost (); dll; "worker" ] @ args) env limit

/// A fresh folder for one job's results.
let folder (name: string) =
    let dir = Path.Combine(Path.GetTempPath(), sprintf "ninjax-mpi-%s-%s" name (Guid.NewGuid().ToString("N").Substring(0, 8)))
    Directory.CreateDirectory dir |> ignore
    dir

/// The root of this checkout: the folder above the test program that holds Ninjax.sln.
let repositoryRoot () =
    let rec up (dir: DirectoryInfo) =
        if isNull dir then failwithf "Cannot find Ninjax.sln above %s." AppContext.BaseDirectory
        elif File.Exists(Path.Combine(dir.FullName, "Ninjax.sln")) then dir.FullName
        else up dir.Parent
    up (DirectoryInfo AppContext.BaseDirectory)


/// A program built with the solution, by its path under the checkout's root.
let built (relative: string) =
    let dll = Path.Combine(repositoryRoot (), relative)
    if not (File.Exists dll) then failwithf "%s is not built; run dotnet fsi build.fsx -t Build." dll
    dll

/// Runs a built .NET program under `mpirun -np N`.
let program (np: int) (limit: TimeSpan) (relative: string) (args: string list) : Job =
    start "mpirun" (mpirunArgs np @ [ dotnetHost (); built relative ] @ args) [] limit

/// Runs the digits trainer (as the build leaves it) under `mpirun -np N`.
let digits (np: int) (limit: TimeSpan) (args: string list) : Job =
    program np limit "examples/Digits/bin/Release/net10.0/Digits.dll" args
