namespace Ninjax

open System
open System.IO
open System.Runtime.InteropServices
open System.Runtime.Intrinsics.X86
open TorchSharp

/// What became of MKL's choice of kernels in this process (see MklKernels).
[<RequireQualifiedAccess>]
type internal MklChoice =
    /// MKL was told before its first call that it runs on an Intel processor, so it picks its
    /// kernels by the processor's instruction sets: AVX-512 here.
    | Avx512
    /// Left to MKL, and why.
    | Untouched of reason: string

/// libtorch's matrix products on the CPU are MKL's (statically linked into libtorch_cpu). MKL picks
/// its kernels once, on its first call, and on a processor whose vendor is not Intel it picks its
/// AVX2 "Zen" kernels even where the processor runs AVX-512: on the AMD EPYC (Zen 5) the benchmarks
/// run on, a product of [128; 256] by [256; 256] took 176 us (95 GFLOP/s) and takes 77 us (216
/// GFLOP/s) with MKL's AVX-512 kernels, and the MLP step of the bench 30% less. MKL asks the vendor
/// through two functions (<c>mkl_serv_intel_cpu_true</c>, <c>mkl_serv_intel_cpu</c>) that cache
/// their answer in a word each, unset (-1) until the first call. So before the first purified call,
/// on Linux x64 with an AMD processor that has AVX-512 (F, BW, DQ, VL), the library sets both words
/// to 1 (Intel). It does so only where each function's machine code is the expected load of its
/// word (which gives the word's address), the word lies in libtorch_cpu's writable data and is
/// still unset; MKL then chooses by the instruction sets it finds, as on an Intel processor. The
/// choice is the whole process's: TorchSharp code in the same process gets the same kernels.
/// Nothing is changed when <c>NINJAX_MKL_KERNELS=off</c>, when <c>MKL_CBWR</c> or
/// <c>MKL_ENABLE_INSTRUCTIONS</c> is set (the user chose MKL's code path), or when MKL has already
/// run (its words are set: a product ran before Ninjax's first call; <c>Tuning.apply</c> at the
/// start of the program avoids that).
module internal MklKernels =

    /// The environment variable that turns the switch off.
    [<Literal>]
    let SwitchVariable = "NINJAX_MKL_KERNELS"

    /// The vendor checks and the bytes that follow the load of their cached word
    /// (<c>mov eax, [rip + rel32]</c>, 8B 05 rel32) in MKL 2024.0 as libtorch 2.10 links it.
    let checks : (string * byte[]) list =
        [
            // test eax, eax; js +1; ret
            "mkl_serv_intel_cpu_true", [| 0x85uy; 0xC0uy; 0x78uy; 0x01uy; 0xC3uy |]
            // cmp eax, -1; je +1; ret
            "mkl_serv_intel_cpu", [| 0x83uy; 0xF8uy; 0xFFuy; 0x74uy; 0x01uy; 0xC3uy |]
        ]

    /// Why the environment or the processor rules the switch out, or None when it may go ahead.
    /// <paramref name="get"/> reads an environment variable (null when unset); vendor is the
    /// processor's CPUID vendor string.
    let blockedBy (get: string -> string) (vendor: string) (avx512: bool) : string option =
        let value name = match get name with null -> "" | v -> v
        if String.Equals(value SwitchVariable, "off", StringComparison.OrdinalIgnoreCase) then
            Some(sprintf "%s=off" SwitchVariable)
        elif value "MKL_CBWR" <> "" then Some "MKL_CBWR is set (MKL's code path is the user's choice)"
        elif value "MKL_ENABLE_INSTRUCTIONS" <> "" then Some "MKL_ENABLE_INSTRUCTIONS is set (MKL's code path is the user's choice)"
        elif vendor <> "AuthenticAMD" then Some(sprintf "the processor is not AMD's (vendor '%s'): MKL picks its kernels itself" vendor)
        elif not avx512 then Some "the processor has no AVX-512 (F, BW, DQ and VL), so MKL's AVX2 kernels are the right ones"
        else None

    /// The address of the word a vendor check caches its answer in: the rel32 of its first
    /// instruction, <c>mov eax, [rip + rel32]</c> (6 bytes, so relative to entry + 6), when the
    /// code starts with that load followed by <paramref name="tail"/>; None otherwise.
    let cachedWord (code: byte[]) (entry: nativeint) (tail: byte[]) : nativeint option =
        if code.Length < 6 + tail.Length || code.[0] <> 0x8Buy || code.[1] <> 0x05uy then None
        elif not (Seq.forall2 (=) tail (Seq.skip 6 code)) then None
        else Some(entry + 6n + nativeint (BitConverter.ToInt32(code, 2)))

    /// True when the 4 bytes at address lie in one writable mapping of the file at path, from the
    /// lines of /proc/PID/maps (<c>start-end perms offset dev inode path</c>, addresses in hex).
    let writableIn (maps: string seq) (path: string) (address: nativeint) : bool =
        let at = uint64 address
        maps
        |> Seq.exists (fun line ->
            let fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries)
            if fields.Length < 6 || not (fields.[1].StartsWith "rw") || String.Join(" ", fields.[5..]) <> path then false
            else
                match fields.[0].Split '-' with
                | [| s; e |] ->
                    match UInt64.TryParse(s, Globalization.NumberStyles.HexNumber, null), UInt64.TryParse(e, Globalization.NumberStyles.HexNumber, null) with
                    | (true, start), (true, stop) -> start <= at && at + 4UL <= stop
                    | _ -> false
                | _ -> false)

    /// The processor's vendor string (CPUID leaf 0: EBX, EDX, ECX), or "" off x86.
    let processorVendor () : string =
        if not X86Base.IsSupported then ""
        else
            let struct (_, ebx, ecx, edx) = X86Base.CpuId(0, 0)
            let bytes = Array.concat [ BitConverter.GetBytes ebx; BitConverter.GetBytes edx; BitConverter.GetBytes ecx ]
            Text.Encoding.ASCII.GetString bytes

    /// True when the processor runs AVX-512 F, BW, DQ and VL (as .NET reports them).
    let hasAvx512 () = Avx512F.IsSupported && Avx512BW.IsSupported && Avx512DQ.IsSupported && Avx512F.VL.IsSupported

    /// Sets MKL's cached vendor words in the libtorch_cpu at path, or says why not.
    let private switch (path: string) : MklChoice =
        let library = NativeLibrary.Load path
        let maps = File.ReadAllLines "/proc/self/maps"
        let words =
            checks
            |> List.map (fun (name, tail) ->
                match NativeLibrary.TryGetExport(library, name) with
                | false, _ -> Error(sprintf "libtorch_cpu has no %s (not MKL 2024's vendor check)" name)
                | true, entry ->
                    let code = Array.zeroCreate<byte> (6 + tail.Length)
                    Marshal.Copy(entry, code, 0, code.Length)
                    match cachedWord code entry tail with
                    | None -> Error(sprintf "%s's machine code is not the one this switch knows (another MKL)" name)
                    | Some word when not (writableIn maps path word) -> Error(sprintf "%s's cached word is not in libtorch_cpu's writable data" name)
                    | Some word -> Ok word)
        match words |> List.tryPick (function Error e -> Some e | Ok _ -> None) with
        | Some reason -> MklChoice.Untouched reason
        | None ->
            let words = words |> List.choose (function Ok w -> Some w | Error _ -> None)
            if words |> List.exists (fun w -> Marshal.ReadInt32 w >= 0) then
                MklChoice.Untouched "MKL had already chosen its kernels: a matrix product ran before Ninjax's first call; call Tuning.apply () (C#: Tuning.Apply()) at the start of the program"
            else
                for w in words do
                    Marshal.WriteInt32(w, 1)
                MklChoice.Avx512

    // Done once per process, before the first purified call.
    let private outcome =
        lazy
            (if not (OperatingSystem.IsLinux()) || RuntimeInformation.ProcessArchitecture <> Architecture.X64 then
                 MklChoice.Untouched "not Linux on x64"
             else
                 match blockedBy Environment.GetEnvironmentVariable (processorVendor ()) (hasAvx512 ()) with
                 | Some reason -> MklChoice.Untouched reason
                 | None ->
                     // libtorch is loaded on TorchSharp's first operation (which makes no product).
                     (torch.zeros 1L).Dispose()
                     match Native.mappedTorchCpu () with
                     | None -> MklChoice.Untouched "no libtorch_cpu.so is mapped into the process"
                     | Some path ->
                         // A speed setting must never fail a call: what cannot be read is left alone.
                         try
                             switch path
                         with
                         | :? DllNotFoundException
                         | :? BadImageFormatException
                         | :? IOException
                         | :? UnauthorizedAccessException as e -> MklChoice.Untouched(sprintf "libtorch_cpu could not be inspected (%s)" e.Message))

    /// Makes the switch once per process (see the module); cheap afterwards.
    let ensure () : unit = outcome.Force() |> ignore

    /// What the switch came to (it happens on the first call of this or of ensure).
    let status () : MklChoice = outcome.Value

    // An AMD processor whose MKL chooses its own kernels runs the AVX2 "Zen" ones.
    let private zen = lazy (processorVendor () = "AuthenticAMD" && status () <> MklChoice.Avx512)

    /// True when MKL runs its AVX2 "Zen" kernels in this process (makes the switch first if it is
    /// not made yet).
    let zenKernels () : bool = zen.Value
