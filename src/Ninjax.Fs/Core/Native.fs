namespace Ninjax

open System
open System.IO
open System.Runtime.CompilerServices
open System.Runtime.InteropServices
open TorchSharp

/// Marks the assembly for the native-library resolver.
type internal Marker = class end

/// What libtorch knows about a tensor that TorchSharp 0.107 does not expose: its version
/// counter, which every in-place operation on the tensor or on any view or alias of it bumps.
/// Purification reads it to tell whether code changed a tensor of the caller's state in place.
/// The functions are libtorch's own C++ exports (Itanium ABI: Linux and macOS); where they
/// cannot be found, <c>available</c> is false and versions read as -1.
module internal Native =

    /// The library name the P/Invokes below use; the resolver maps it to the libtorch_cpu that
    /// TorchSharp already loaded (never another one on the loader path).
    [<Literal>]
    let private TorchCpu = "ninjax-libtorch-cpu"

    module private Exports =
        // int64_t at::TensorBase::_version() const. TorchSharp's handle is an at::Tensor*, which
        // is what `this` points to. Raises a C++ error on inference tensors: check those first.
        [<DllImport(TorchCpu, EntryPoint = "_ZNK2at10TensorBase8_versionEv", ExactSpelling = true); SuppressGCTransition>]
        extern int64 version(nativeint tensor)

        // bool at::native::is_inference(const at::Tensor&): never raises.
        [<DllImport(TorchCpu, EntryPoint = "_ZN2at6native12is_inferenceERKNS_6TensorE", ExactSpelling = true); SuppressGCTransition>]
        extern [<MarshalAs(UnmanagedType.U1)>] bool isInference(nativeint tensor)

        // const c10::VariableVersion& torch::autograd::impl::version_counter(const at::Tensor&):
        // never raises. A VariableVersion holds one intrusive pointer to the shared counter (null
        // for inference tensors), so tensors that share it are views or aliases of each other.
        [<DllImport(TorchCpu, EntryPoint = "_ZN5torch8autograd4impl15version_counterERKN2at6TensorE", ExactSpelling = true); SuppressGCTransition>]
        extern nativeint versionCounter(nativeint tensor)

    /// The file names libtorch_cpu has on each platform.
    let private torchCpuNames =
        if OperatingSystem.IsWindows() then [ "torch_cpu.dll" ]
        elif OperatingSystem.IsMacOS() then [ "libtorch_cpu.dylib" ]
        else [ "libtorch_cpu.so" ]

    /// The libtorch_cpu mapped into this process, from /proc/self/maps (Linux), if any.
    let mappedTorchCpu () : string option =
        if not (OperatingSystem.IsLinux()) || not (File.Exists "/proc/self/maps") then None
        else LibTorchCheck.mappedPaths (File.ReadLines "/proc/self/maps") |> List.tryFind (fun p -> Path.GetFileName p = "libtorch_cpu.so")

    let private resolve (name: string) (_: Reflection.Assembly) (_: Nullable<DllImportSearchPath>) : nativeint =
        if name <> TorchCpu then IntPtr.Zero
        else
            // Loading by the path already mapped returns the same handle; a bare name would let
            // the loader pick whatever libtorch_cpu it finds first.
            let candidates = (mappedTorchCpu () |> Option.toList) @ torchCpuNames
            candidates
            |> List.tryPick (fun c ->
                match NativeLibrary.TryLoad c with
                | true, h -> Some h
                | _ -> None)
            |> Option.defaultValue IntPtr.Zero

    // The calls into libtorch, each in a method of its own that is compiled only when first
    // called: the runtime binds a P/Invoke without a GC transition when it compiles the method
    // that contains it, which must come after the resolver is installed.
    [<MethodImpl(MethodImplOptions.NoInlining)>]
    let private readVersion (h: nativeint) = Exports.version h

    [<MethodImpl(MethodImplOptions.NoInlining)>]
    let private readIsInference (h: nativeint) = Exports.isInference h

    [<MethodImpl(MethodImplOptions.NoInlining)>]
    let private readCounter (h: nativeint) = Exports.versionCounter h

    /// How versions are read in this process.
    type private Reader =
        /// The exports are missing: versions read as -1.
        | Unavailable
        /// Through libtorch's accessor, after checking for inference tensors (two calls).
        | Accessor
        /// From the shared counter itself, at the offset its version was found at (one call).
        | CounterAt of offset: int

    // Finds where the counter object keeps the version: a c10::VersionCounter is an
    // intrusive_ptr_target (a vtable pointer and the reference counts) followed by the version
    // as an atomic uint32, at offset 16 in libtorch 2.10. The offset is accepted only when it
    // follows the accessor through several in-place operations.
    [<MethodImpl(MethodImplOptions.NoInlining)>]
    let private findOffset () : int option =
        use t = torch.zeros 1L
        let one = 1.0.ToScalar()
        let counterOf (x: torch.Tensor) = Marshal.ReadIntPtr(readCounter x.Handle)
        let agrees (offset: int) =
            let check () =
                let c = counterOf t
                c <> IntPtr.Zero && int64 (uint32 (Marshal.ReadInt32(c, offset))) = readVersion t.Handle
            [ 37; 1; 100 ]
            |> List.forall (fun bumps ->
                for _ in 1 .. bumps do
                    t.add_ one |> ignore
                check ())
        [ 16; 24; 8; 12; 20 ] |> List.tryFind agrees

    [<MethodImpl(MethodImplOptions.NoInlining)>]
    let private probe () : Reader =
        // Make sure libtorch is loaded (TorchSharp loads it on its first operation).
        use t = torch.zeros 1L
        let before = readVersion t.Handle
        t.add_ (1.0.ToScalar()) |> ignore
        if readIsInference t.Handle || readVersion t.Handle <> before + 1L || readCounter t.Handle = IntPtr.Zero then Unavailable
        else
            match findOffset () with
            | Some offset -> CounterAt offset
            | None -> Accessor

    // Installs the resolver and probes the exports once.
    let private reader =
        lazy
            (try
                NativeLibrary.SetDllImportResolver(typeof<Marker>.Assembly, DllImportResolver resolve)
                probe ()
             with
             | :? DllNotFoundException
             | :? EntryPointNotFoundException
             | :? InvalidOperationException -> Unavailable)

    /// True when tensor versions can be read in this process.
    let available () : bool = reader.Value <> Unavailable

    /// The tensor's version: how many in-place operations it (or a view or alias of it) has seen.
    /// -1 when it cannot be read (disposed tensors, inference tensors, no libtorch exports).
    let version (t: torch.Tensor) : int64 =
        if isNull (box t) || t.IsInvalid then -1L
        else
            match reader.Value with
            | CounterAt offset ->
                // Inference tensors have no counter.
                let c = Marshal.ReadIntPtr(readCounter t.Handle)
                if c = IntPtr.Zero then -1L else int64 (uint32 (Marshal.ReadInt32(c, offset)))
            | Accessor ->
                let h = t.Handle
                if readIsInference h then -1L else readVersion h
            | Unavailable -> -1L

    /// The identity of the tensor's version counter, shared by a tensor and all its views and
    /// aliases (detach included); 0 when it cannot be read.
    let counter (t: torch.Tensor) : nativeint =
        if isNull (box t) || t.IsInvalid || reader.Value = Unavailable then IntPtr.Zero
        else
            let versionRef = readCounter t.Handle
            if versionRef = IntPtr.Zero then IntPtr.Zero else Marshal.ReadIntPtr versionRef

    /// True when an in-place write to one tensor changes the other: they are the same tensor, or
    /// views or aliases of one another.
    let sameMemory (a: torch.Tensor) (b: torch.Tensor) : bool =
        obj.ReferenceEquals(a, b)
        || (let ca = counter a
            ca <> IntPtr.Zero && ca = counter b)
