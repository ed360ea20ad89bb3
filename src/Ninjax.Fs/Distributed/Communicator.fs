// The address of a tensor's native data is read through a Span (NativePtr: warning 9).
#nowarn "9"

namespace Ninjax

open System
open System.Diagnostics
open System.Runtime.InteropServices
open System.Threading
open TorchSharp

/// What the collectives of a communicator cost so far: how many ran, the time spent in them
/// (waiting for the other ranks included) and the bytes each rank contributed.
[<Struct>]
type CollectiveStatistics =
    {
        /// The number of collective operations.
        Calls: int64
        /// The time spent inside them, from start to completion on this rank.
        Elapsed: TimeSpan
        /// The bytes this rank passed to them.
        Bytes: int64
    }

/// Watches the collective in flight from a background thread. A collective that waits longer
/// than the timeout means another rank has died, hangs or runs different code; MPI offers no
/// way to cancel the wait, so the watchdog says so and ends this process (without MPI or .NET
/// shutdown, which would wait too). The launcher (mpirun) then ends the other ranks. The
/// collectives themselves are MPI's blocking calls: polling non-blocking ones measured 1.6x
/// slower for a step's all-reduce here (85,000 floats: 129 us against 81 us).
type internal Watchdog(name: unit -> string, timeout: unit -> TimeSpan) =
    let mutable generation = 0L
    let mutable startedAt = 0L
    let mutable operation: string = null
    let mutable describe: unit -> string = fun () -> ""
    let mutable thread: Thread = null

    let run () =
        while true do
            let limit = timeout ()
            Thread.Sleep(TimeSpan.FromTicks(max (TimeSpan.FromMilliseconds(50.0).Ticks) (min (TimeSpan.FromSeconds(1.0).Ticks) (limit.Ticks / 20L))))
            let seen = Volatile.Read &generation
            let started = Volatile.Read &startedAt
            if started <> 0L then
                let waited = Stopwatch.GetElapsedTime started
                if waited > limit && Volatile.Read &generation = seen && Volatile.Read &startedAt = started then
                    eprintfn
                        "%s waited %.0f s in %s (%s) for the other ranks: one of them has died, hangs, or runs different code (a collective skipped, or called in another order or with another size). This rank exits (code 1) instead of hanging, and the launcher ends the others. If a rank legitimately works alone for that long (evaluation, saving), raise the timeout: Communicator.Timeout, or the environment variable NINJAX_MPI_TIMEOUT (seconds)."
                        (name ()) waited.TotalSeconds operation (describe ())
                    Console.Error.Flush()
                    MpiNative.exitNow 1

    /// Marks the start of a blocking call (starting the watchdog's thread on first use).
    member _.Enter(what: string, details: unit -> string) =
        if isNull thread then
            thread <- Thread(run, IsBackground = true, Name = "Ninjax MPI watchdog")
            thread.Start()
        operation <- what
        describe <- details
        Volatile.Write(&generation, generation + 1L)
        Volatile.Write(&startedAt, Stopwatch.GetTimestamp())

    /// Marks the end of the blocking call.
    member _.Leave() = Volatile.Write(&startedAt, 0L)

/// The processes of an MPI job (MPI_COMM_WORLD, through Open MPI), and the collectives data-parallel
/// training needs: sum all-reduce, broadcast, all-gather and barrier on tensors. Every collective
/// must be called by every rank, in the same order, with tensors of the same size (broadcast and
/// all-gather check the sizes first). A collective that waits longer than <see cref="Timeout"/>
/// for the other ranks ends this process with a message that says so, rather than hang; the
/// launcher then ends the others. <c>Communicator.World</c> initialises MPI on first use; run
/// the program with <c>mpirun -np N</c> (a program started without mpirun is a job of one
/// process). Linux with Open MPI 3.x to 5.x (libmpi.so.40).
[<Sealed; AllowNullLiteral>]
type Communicator private (handles: MpiNative.Handles, rank: int, size: int, timeout: TimeSpan) =

    static let gate = obj ()
    static let mutable world: Communicator = null
    // Set when mpirun tells this process to stop, so that ProcessExit does not wait in
    // MPI_Finalize for ranks that are gone.
    static let mutable terminating = false
    // Held so that the registration (which unregisters when finalized) lives as long as the process.
    static let mutable sigterm: PosixSignalRegistration = null

    let mutable timeout = timeout
    let mutable failure: string = null
    let mutable finalized = false
    let mutable calls = 0L
    let mutable elapsedTicks = 0L
    let mutable bytes = 0L

    /// The name of this rank in messages.
    let who () = sprintf "Rank %d of %d" rank size

    let watchdog = Watchdog(who, (fun () -> timeout))

    let check (operation: string) (code: int) =
        if code <> MpiNative.Success then
            let message = sprintf "%s: %s failed: %s." (who ()) operation (MpiNative.errorText code)
            failure <- message
            raise (InvalidOperationException message)

    /// Raises when the communicator cannot run collectives any more.
    let usable (operation: string) =
        if finalized then
            raise (ObjectDisposedException("Communicator", sprintf "%s: %s after MPI was finalized (the communicator was disposed)." (who ()) operation))
        if not (isNull failure) then
            raise (InvalidOperationException(sprintf "%s: cannot run %s: an earlier collective failed, so the ranks are out of step. The first failure: %s" (who ()) operation failure))

    /// The raw address of a contiguous CPU tensor's data.
    let addressOf (t: torch.Tensor) : nativeint =
        if t.numel () = 0L then nativeint 0
        else
            let span = t.bytes
            let first = &MemoryMarshal.GetReference span
            NativeInterop.NativePtr.toNativeInt (NativeInterop.NativePtr.ofVoidPtr<byte> (System.Runtime.CompilerServices.Unsafe.AsPointer<byte> &first))

    /// Runs one blocking collective under the lock and the watchdog, and counts it.
    let collective (operation: string) (describe: unit -> string) (size: int64) (call: unit -> int) =
        lock gate (fun () ->
            usable operation
            let started = Stopwatch.GetTimestamp()
            watchdog.Enter(operation, describe)
            let code =
                try call ()
                finally watchdog.Leave()
            check operation code
            calls <- calls + 1L
            bytes <- bytes + size
            elapsedTicks <- elapsedTicks + (Stopwatch.GetTimestamp() - started))

    let describeTensor (t: torch.Tensor) = sprintf "%d %s values" (t.numel ()) (t.dtype.ToString().ToLowerInvariant())

    /// Splits a flat contiguous CPU tensor into pieces MPI can count (an int) and a Span can
    /// address (2 GiB); almost always one piece.
    let pieces (flat: torch.Tensor) : torch.Tensor list =
        let n = flat.numel ()
        let perPiece = (1L <<< 30) / int64 flat.ElementSize
        if n <= perPiece then [ flat ]
        else [ for start in 0L .. perPiece .. n - 1L -> flat.narrow(0L, start, min perPiece (n - start)) ]

    /// A contiguous CPU tensor holding t's values: t itself where it already is one.
    let hostContiguous (t: torch.Tensor) : torch.Tensor =
        if t.device_type = DeviceType.CPU && t.is_contiguous () then t
        else t.cpu().contiguous ()

    let sumType (dtype: torch.ScalarType) =
        match dtype with
        | torch.ScalarType.Float32 -> handles.Float
        | torch.ScalarType.Float64 -> handles.Double
        | torch.ScalarType.Int32 -> handles.Int32
        | torch.ScalarType.Int64 -> handles.Int64
        | other ->
            raise (
                ArgumentException(
                    sprintf "%s: MPI sums float32, float64, int32 and int64 tensors; this one is %O. Convert it first (the data-parallel optimizer sums half-precision gradients in float32)." (who ()) other,
                    "tensor"
                )
            )

    /// Checks that every rank passes the same number of bytes to a collective whose sizes MPI
    /// cannot check itself; otherwise raises on every rank alike, listing the sizes.
    let agreeOnSize (operation: string) (root: int option) (count: int64) =
        let counts = Array.zeroCreate<int64> size
        let mine = [| count |]
        let pinnedMine = GCHandle.Alloc(mine, GCHandleType.Pinned)
        let pinnedAll = GCHandle.Alloc(counts, GCHandleType.Pinned)
        try
            collective (operation + " (size check)") (fun () -> sprintf "the size of %d bytes" count) 8L (fun () ->
                MpiNative.MPI_Allgather(pinnedMine.AddrOfPinnedObject(), 1, handles.Int64, pinnedAll.AddrOfPinnedObject(), 1, handles.Int64, handles.CommWorld))
        finally
            pinnedMine.Free()
            pinnedAll.Free()
        let reference = counts.[defaultArg root 0]
        if counts |> Array.exists (fun c -> c <> reference) then
            let listing = String.Join(", ", counts |> Array.mapi (fun r c -> sprintf "rank %d: %d bytes" r c))
            raise (ArgumentException(sprintf "%s: the ranks passed tensors of different sizes to %s (%s); every rank must pass the same shape and dtype." (who ()) operation listing, "tensor"))

    /// MPI_COMM_WORLD of this process, initialising MPI on first use (MPI_Init_thread,
    /// MPI_THREAD_SERIALIZED). Errors are returned, not fatal, so they surface as exceptions
    /// naming the rank. When the process exits, MPI is finalized; a process that exits with a
    /// non-zero code, or with an unhandled exception (its message is printed), aborts the whole
    /// job (MPI_Abort), so the other ranks stop at once instead of waiting for this one.
    static member World: Communicator =
        lock gate (fun () ->
            if isNull world then world <- Communicator.Initialize()
            world)

    /// True when this process was started by Open MPI's mpirun (or another launcher that set
    /// OMPI_COMM_WORLD_SIZE or PMIX_RANK); a program can choose to train data-parallel then.
    static member IsLaunched: bool =
        let set name = not (String.IsNullOrEmpty(Environment.GetEnvironmentVariable name))
        set "OMPI_COMM_WORLD_SIZE" || set "PMIX_RANK"

    static member private Initialize() : Communicator =
        let handles = MpiNative.load ()
        let mutable flag = 0
        if MpiNative.MPI_Finalized(&flag) = MpiNative.Success && flag <> 0 then
            raise (InvalidOperationException "MPI was finalized in this process already; it cannot be initialised again.")
        if MpiNative.MPI_Initialized(&flag) <> MpiNative.Success || flag = 0 then
            let mutable provided = 0
            let code = MpiNative.MPI_Init_thread(nativeint 0, nativeint 0, MpiNative.ThreadSerialized, &provided)
            if code <> MpiNative.Success then
                raise (InvalidOperationException(sprintf "MPI_Init_thread failed: %s. Start the program with mpirun -np N (as root add --allow-run-as-root)." (MpiNative.errorText code)))
            if provided < MpiNative.ThreadSerialized then
                raise (InvalidOperationException(sprintf "%s provides thread level %d; Ninjax needs MPI_THREAD_SERIALIZED (2)." (MpiNative.libraryVersion ()) provided))
        MpiNative.MPI_Comm_set_errhandler(handles.CommWorld, handles.ErrorsReturn) |> ignore
        let mutable rank = 0
        let mutable size = 0
        MpiNative.MPI_Comm_rank(handles.CommWorld, &rank) |> ignore
        MpiNative.MPI_Comm_size(handles.CommWorld, &size) |> ignore
        let timeout =
            match Environment.GetEnvironmentVariable "NINJAX_MPI_TIMEOUT" with
            | null | "" -> TimeSpan.FromMinutes 5.0
            | text ->
                match Double.TryParse(text, Globalization.NumberStyles.Float, Globalization.CultureInfo.InvariantCulture) with
                | true, seconds when seconds > 0.0 -> TimeSpan.FromSeconds seconds
                | _ -> raise (ArgumentException(sprintf "NINJAX_MPI_TIMEOUT must be a positive number of seconds; it is '%s'." text))
        let comm = new Communicator(handles, rank, size, timeout)
        AppDomain.CurrentDomain.UnhandledException.Add(fun e ->
            eprintfn "%O: unhandled exception, aborting the MPI job so that the other ranks stop: %O" comm e.ExceptionObject
            Console.Error.Flush()
            comm.AbortJob 1)
        AppDomain.CurrentDomain.ProcessExit.Add(fun _ -> if not terminating then comm.Exit())
        // mpirun sends SIGTERM to the ranks that remain when one fails or is killed; say so.
        sigterm <-
            PosixSignalRegistration.Create(
                PosixSignal.SIGTERM,
                fun _ ->
                    terminating <- true
                    eprintfn "%O: stopped by the MPI launcher (SIGTERM): another rank failed or was killed, or the job was interrupted; mpirun's message names the rank." comm
                    Console.Error.Flush()
            )
        comm

    /// This process's rank, from 0 to Size - 1.
    member _.Rank = rank

    /// The number of processes in the job.
    member _.Size = size

    /// True on rank 0, the rank that prints and saves by convention.
    member _.IsRoot = (rank = 0)

    /// How long a collective waits for the other ranks before this process gives up and exits
    /// (default 5 minutes, or NINJAX_MPI_TIMEOUT seconds).
    member _.Timeout
        with get () = timeout
        and set (value: TimeSpan) =
            if value <= TimeSpan.Zero then raise (ArgumentOutOfRangeException("value", value, "The timeout must be positive."))
            timeout <- value

    /// The MPI library in use, as it names itself.
    member _.Library = MpiNative.libraryVersion ()

    /// What the collectives cost so far.
    member _.Statistics =
        lock gate (fun () -> { Calls = calls; Elapsed = TimeSpan.FromSeconds(float elapsedTicks / float Stopwatch.Frequency); Bytes = bytes })

    /// Sets the statistics back to zero.
    member _.ResetStatistics() =
        lock gate (fun () ->
            calls <- 0L
            elapsedTicks <- 0L
            bytes <- 0L)

    /// Replaces the tensor's values, on every rank, by their sum over all ranks (MPI_Allreduce
    /// with MPI_SUM, in place). float32, float64, int32 and int64; a tensor on another device
    /// goes through host memory. Open MPI reduces in the same order for every rank, so every
    /// rank gets the same bits.
    member _.AllReduceSum(tensor: torch.Tensor) : unit =
        if isNull tensor then raise (ArgumentNullException("tensor"))
        let datatype = sumType tensor.dtype
        use _ = torch.no_grad ()
        let host = hostContiguous tensor
        for piece in pieces (host.view(-1L)) do
            let count = piece.numel ()
            if count > 0L then
                let address = addressOf piece
                collective "all-reduce" (fun () -> describeTensor tensor) (count * int64 piece.ElementSize) (fun () ->
                    MpiNative.MPI_Allreduce(MpiNative.InPlace, address, int count, datatype, handles.OpSum, handles.CommWorld))
        if not (obj.ReferenceEquals(host, tensor)) then tensor.copy_ host |> ignore

    /// Replaces the tensor's values on every rank by those of rank <paramref name="root"/>
    /// (MPI_Bcast, in place, any dtype). The ranks' tensors must have the same size, which is
    /// checked first.
    member _.Broadcast(tensor: torch.Tensor, root: int) : unit =
        if isNull tensor then raise (ArgumentNullException("tensor"))
        if root < 0 || root >= size then raise (ArgumentOutOfRangeException("root", root, sprintf "The root must be a rank from 0 to %d." (size - 1)))
        use _ = torch.no_grad ()
        let host = hostContiguous tensor
        let flat = host.view(-1L)
        agreeOnSize "broadcast" (Some root) (flat.numel () * int64 flat.ElementSize)
        for piece in pieces flat do
            let count = piece.numel () * int64 piece.ElementSize
            if count > 0L then
                let address = addressOf piece
                collective "broadcast" (fun () -> describeTensor tensor) count (fun () ->
                    MpiNative.MPI_Bcast(address, int count, handles.Byte, root, handles.CommWorld))
        if not (obj.ReferenceEquals(host, tensor)) then tensor.copy_ host |> ignore

    /// Every rank's tensor stacked in rank order: a new tensor of shape [Size; ...shape]
    /// (MPI_Allgather, any dtype), on the tensor's device. The ranks' tensors must have the same
    /// size, which is checked first.
    member _.AllGather(tensor: torch.Tensor) : torch.Tensor =
        if isNull tensor then raise (ArgumentNullException("tensor"))
        use _ = torch.no_grad ()
        let host = hostContiguous tensor
        let count = host.numel () * int64 host.ElementSize
        agreeOnSize "all-gather" None count
        if count * int64 size > int64 Int32.MaxValue then
            raise (ArgumentException(sprintf "%s: an all-gather of %d bytes from each of %d ranks is too large (at most 2 GiB in all)." (who ()) count size, "tensor"))
        let gathered = torch.empty(Array.append [| int64 size |] host.shape, dtype = host.dtype)
        if count > 0L then
            let source = addressOf host
            let target = addressOf gathered
            collective "all-gather" (fun () -> describeTensor tensor) count (fun () ->
                MpiNative.MPI_Allgather(source, int count, handles.Byte, target, int count, handles.Byte, handles.CommWorld))
        if tensor.device_type = DeviceType.CPU then gathered else gathered.``to`` tensor.device

    /// Waits until every rank has called Barrier (MPI_Barrier).
    member _.Barrier() : unit =
        collective "barrier" (fun () -> "no data") 0L (fun () -> MpiNative.MPI_Barrier handles.CommWorld)

    /// Prints the reason on this rank's standard error and ends every process of the job
    /// (MPI_Abort) with the error code; it does not return. Use it when one rank fails in a way
    /// the others cannot see, so that they stop instead of waiting for it.
    member this.Abort(errorCode: int, reason: string) : unit =
        if not (String.IsNullOrEmpty reason) then
            eprintfn "%s: %s" (who ()) reason
            Console.Error.Flush()
        this.AbortJob errorCode

    member internal _.AbortJob(errorCode: int) : unit =
        MpiNative.MPI_Abort(handles.CommWorld, errorCode) |> ignore
        // MPI_Abort does not return when it works; when it does, stop this process at least
        // (at once: this may run inside ProcessExit, where Environment.Exit would wait for it).
        MpiNative.exitNow errorCode

    /// Finalizes MPI once (ProcessExit and Dispose both come here). MPI_Finalize waits for the
    /// other ranks, under the watchdog.
    member internal _.Finish() : unit =
        lock gate (fun () ->
            if not finalized then
                finalized <- true
                let mutable flag = 0
                if MpiNative.MPI_Finalized(&flag) = MpiNative.Success && flag = 0 then
                    watchdog.Enter("MPI_Finalize", fun () -> "waiting for every rank to finish")
                    MpiNative.MPI_Finalize() |> ignore
                    watchdog.Leave())

    /// At process exit: a process that exits with an error code aborts the job, so the other
    /// ranks stop instead of waiting for it in their next collective; otherwise MPI is finalized.
    member internal this.Exit() : unit =
        let code = Environment.ExitCode
        if code <> 0 && not finalized then
            eprintfn "%s: exiting with code %d; aborting the MPI job so that the other ranks stop instead of waiting for this one." (who ()) code
            Console.Error.Flush()
            this.AbortJob code
        else this.Finish()

    /// "Rank r of n".
    override _.ToString() = who ()

    /// Finalizes MPI (MPI_Finalize); later collectives raise. Every rank should dispose, or
    /// simply exit: MPI is finalized when the process exits.
    interface IDisposable with
        member this.Dispose() = this.Finish()
