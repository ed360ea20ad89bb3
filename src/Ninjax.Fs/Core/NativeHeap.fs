namespace Ninjax

open System
open System.Runtime.InteropServices

/// What the process-wide tuning of glibc's heap came to (see NativeHeap).
[<RequireQualifiedAccess>]
type internal HeapTuning =
    /// Both thresholds were set: mallopt accepted them.
    | Tuned
    /// Left as it was, and why.
    | Untouched of reason: string

/// glibc's malloc, which libtorch allocates every CPU tensor with, gives the free memory at the
/// top of its heap back to the kernel once more than a threshold of it is free, and serves large
/// blocks (at first 128 KB and up) by mmap, unmapping them when they are freed. A training step
/// frees all its activations and gradients at its end (a purified call frees everything it made
/// that it does not hand out), so the top of the heap is free after every step and glibc trims
/// it, and the next step's allocations fault their pages in again, zeroed by the kernel: the
/// donating loop of the digits CNN (activations of 256 KB to 2 MB) spent about 0.6 ms of a 3 ms
/// step in page faults and brk. So before the first purified call the library raises the trim
/// threshold to 256 MB and fixes the mmap threshold at 32 MB (the largest glibc allows, which its
/// own adaptive threshold would reach for blocks of that size): memory freed at the end of a step
/// stays mapped for the next one, as a caching allocator keeps it. A process keeps up to 256 MB
/// that it once used and freed; blocks over 32 MB are still mapped and unmapped each time.
/// Setting either threshold turns glibc's adaptive thresholds off (mallopt(3)). Nothing is
/// changed when the user set these thresholds already (GLIBC_TUNABLES or MALLOC_*_ variables),
/// preloads another allocator (jemalloc, tcmalloc, mimalloc), sets NINJAX_MALLOC_TUNING=off, or
/// the C library is not glibc (musl, macOS, Windows).
module internal NativeHeap =

    /// The environment variable that turns the tuning off.
    [<Literal>]
    let SwitchVariable = "NINJAX_MALLOC_TUNING"

    /// The trim threshold set: free memory at the top of the heap kept mapped, in bytes.
    [<Literal>]
    let TrimThreshold = 268435456

    /// The mmap threshold set: blocks this large or larger are mapped on their own, in bytes.
    [<Literal>]
    let MmapThreshold = 33554432

    // mallopt(3)'s parameter numbers (malloc.h).
    let private M_TRIM_THRESHOLD = -1
    let private M_MMAP_THRESHOLD = -3

    [<DllImport("libc", EntryPoint = "mallopt", ExactSpelling = true)>]
    extern int private mallopt(int param, int value)

    /// Why the environment rules the tuning out, or None when it may go ahead. <paramref name="get"/>
    /// reads an environment variable (null when unset).
    let blockedBy (get: string -> string) : string option =
        let value name = match get name with null -> "" | v -> v
        let tunables = value "GLIBC_TUNABLES"
        let preload = value "LD_PRELOAD"
        if String.Equals(value SwitchVariable, "off", StringComparison.OrdinalIgnoreCase) then
            Some(sprintf "%s=off" SwitchVariable)
        elif [ "glibc.malloc.trim_threshold"; "glibc.malloc.mmap_threshold"; "glibc.malloc.top_pad" ] |> List.exists (fun t -> tunables.Contains t) then
            Some "GLIBC_TUNABLES sets malloc's thresholds"
        elif [ "MALLOC_TRIM_THRESHOLD_"; "MALLOC_MMAP_THRESHOLD_"; "MALLOC_TOP_PAD_" ] |> List.exists (fun v -> value v <> "") then
            Some "a MALLOC_*_ variable sets malloc's thresholds"
        elif [ "jemalloc"; "tcmalloc"; "mimalloc" ] |> List.exists (fun a -> preload.Contains a) then
            Some "LD_PRELOAD loads another allocator"
        else None

    /// True when the process's C library is glibc (it exports gnu_get_libc_version).
    let private isGlibc () =
        match NativeLibrary.TryLoad "libc.so.6" with
        | true, libc ->
            match NativeLibrary.TryGetExport(libc, "gnu_get_libc_version") with
            | true, _ -> true
            | _ -> false
        | _ -> false

    // Done once per process, before the first purified call.
    let private outcome =
        lazy
            (if not (OperatingSystem.IsLinux()) then HeapTuning.Untouched "not Linux"
             else
                 match blockedBy Environment.GetEnvironmentVariable with
                 | Some reason -> HeapTuning.Untouched reason
                 | None when not (isGlibc ()) -> HeapTuning.Untouched "the C library is not glibc"
                 | None ->
                     // The mmap threshold first: setting the trim threshold alone would fix the
                     // mmap threshold at its initial 128 KB, mapping every larger block anew.
                     let mmap = mallopt (M_MMAP_THRESHOLD, MmapThreshold)
                     let trim = mallopt (M_TRIM_THRESHOLD, TrimThreshold)
                     if mmap = 1 && trim = 1 then HeapTuning.Tuned
                     else HeapTuning.Untouched(sprintf "mallopt refused (mmap threshold: %d, trim threshold: %d)" mmap trim))

    /// Tunes the heap once per process (see the module); cheap afterwards.
    let ensure () : unit = outcome.Force() |> ignore

    /// What the tuning came to (it happens on the first call of this or of ensure).
    let status () : HeapTuning = outcome.Value
