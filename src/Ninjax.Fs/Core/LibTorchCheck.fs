namespace Ninjax

open System
open System.IO
open TorchSharp

/// Which libtorch this process loaded. TorchSharp 0.107 is built against libtorch 2.10; a script
/// or notebook (no deps.json) on a machine with another libtorch on the loader path (Debian's
/// libtorch2.6 from python3-torch, a pip or conda PyTorch in LD_LIBRARY_PATH) can load that one
/// instead, and some operations then crash the process. The first purified call checks the
/// libraries mapped into the process (Linux) and fails with a message that says how to fix it.
module internal LibTorchCheck =

    /// The environment variable that turns the check off, for a libtorch loaded on purpose.
    [<Literal>]
    let SwitchVariable = "NINJAX_LIBTORCH_CHECK"

    // The native libraries of libtorch itself (not TorchSharp's bridge, libLibTorchSharp).
    let private families = set [ "libtorch"; "libtorch_cpu"; "libtorch_cuda"; "libc10"; "libc10_cuda"; "libtorch_global_deps" ]

    /// The library a path names (<c>libtorch_cpu</c> for <c>.../libtorch_cpu.so.2.6</c>), when it
    /// is one of libtorch's.
    let familyOf (path: string) : string option =
        let file = Path.GetFileName path
        let dot = file.IndexOf(".so", StringComparison.Ordinal)
        if dot <= 0 then None
        else
            let stem = file.Substring(0, dot)
            if families.Contains stem then Some stem else None

    /// The package version TorchSharp names for its libtorch (<c>2.10.0</c>), as NuGet folders
    /// spell it: trailing <c>.0</c> parts beyond three dropped.
    let expectedVersion () : string =
        let parts = torch.__version__.Split '.' |> List.ofArray
        let rec trim (ps: string list) = if ps.Length > 3 && List.last ps = "0" then trim (List.take (ps.Length - 1) ps) else ps
        String.Join(".", trim parts)

    /// The paths of the files mapped into a process, from the text of /proc/PID/maps.
    let mappedPaths (maps: string seq) : string list =
        maps
        |> Seq.choose (fun line ->
            let slash = line.IndexOf '/'
            if slash < 0 then None else Some(line.Substring(slash).Replace(" (deleted)", "")))
        |> Seq.distinct
        |> List.ofSeq

    /// What is wrong with the libtorch libraries among <paramref name="paths"/> (the files mapped
    /// into a process), or None. A libtorch library is TorchSharp's own when it lies in the folder
    /// of TorchSharp's bridge (libLibTorchSharp, as an application's output folder has them) or in
    /// a libtorch NuGet package of the version TorchSharp names (as scripts load them).
    let problem (version: string) (paths: string list) : string option =
        let bridge = paths |> List.tryFind (fun p -> Path.GetFileName p = "libLibTorchSharp.so")
        let bridgeFolder = bridge |> Option.map Path.GetDirectoryName
        let torchLibraries = paths |> List.choose (fun p -> familyOf p |> Option.map (fun f -> f, p))
        let fromPackage (path: string) =
            let segments = path.Split '/'
            segments
            |> Array.pairwise
            |> Array.exists (fun (package, v) ->
                (package.StartsWith("libtorch-cpu-", StringComparison.OrdinalIgnoreCase)
                 || package.StartsWith("libtorch-cuda-", StringComparison.OrdinalIgnoreCase))
                && v = version)
        let ownLibrary (path: string) = Some(Path.GetDirectoryName path) = bridgeFolder || fromPackage path
        let foreign = torchLibraries |> List.filter (fun (_, p) -> not (ownLibrary p)) |> List.map snd
        let twice =
            torchLibraries
            |> List.groupBy fst
            |> List.filter (fun (_, ps) -> ps.Length > 1)
            |> List.collect (fun (_, ps) -> List.map snd ps)
        let wrong = foreign @ twice |> List.distinct
        if wrong.IsEmpty then None
        else
            let expected =
                match bridgeFolder with
                | Some folder -> sprintf "the libtorch %s that TorchSharp was built for (TorchSharp's native bridge is in %s)" version folder
                | None -> sprintf "the libtorch %s that TorchSharp was built for" version
            Some(
                sprintf
                    "This process loaded a libtorch that TorchSharp %s was not built for: %s. It needs %s, from the libtorch-cpu (or libtorch-cuda) package %s. With another libtorch, some operations crash the process. This happens in scripts and notebooks when another libtorch is on the loader path: Debian's python3-torch (libtorch2.6), or a pip or conda PyTorch in LD_LIBRARY_PATH. Fix it by removing that folder from LD_LIBRARY_PATH or uninstalling that package (apt remove python3-torch), or run the code as a project (dotnet run), whose deps.json names TorchSharp's own libtorch. If you load this libtorch on purpose, set %s=off."
                    (typeof<torch.Tensor>.Assembly.GetName().Version.ToString 3)
                    (String.Join(", ", wrong))
                    expected
                    version
                    SwitchVariable
            )

    // The verdict for this process, computed once (the libraries cannot change under TorchSharp).
    let private verdict =
        lazy
            (if not (OperatingSystem.IsLinux()) || not (File.Exists "/proc/self/maps") then None
             elif String.Equals(Environment.GetEnvironmentVariable SwitchVariable, "off", StringComparison.OrdinalIgnoreCase) then None
             else
                 // TorchSharp loads libtorch on its first operation; make sure that has happened.
                 torch.InitializeDeviceType DeviceType.CPU
                 problem (expectedVersion ()) (mappedPaths (File.ReadLines "/proc/self/maps")))

    /// Raises InvalidOperationException, saying which libtorch was found and how to fix it, when
    /// this process loaded another libtorch than TorchSharp's. Checks once; cheap afterwards.
    let ensure () : unit =
        match verdict.Value with
        | None -> ()
        | Some message -> raise (InvalidOperationException message)
