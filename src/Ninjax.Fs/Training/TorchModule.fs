namespace Ninjax

open System
open System.Collections.Generic
open System.Linq.Expressions
open System.Reflection
open System.Runtime.InteropServices
open TorchSharp

/// The TorchSharp internals the adapter relies on, found once and compiled into delegates so
/// that no call pays for reflection.
module internal TorchInterop =

    let private handleField =
        match typeof<torch.Tensor>.GetField("handle", BindingFlags.NonPublic ||| BindingFlags.Instance) with
        | null ->
            raise (
                InvalidOperationException(
                    sprintf
                        "TorchModule needs the internal field Tensor.handle of TorchSharp (present in 0.107); the loaded TorchSharp %O lacks it."
                        (typeof<torch.Tensor>.Assembly.GetName().Version)
                )
            )
        | f -> f

    /// Reads the native handle a managed tensor object points at.
    let getHandle: Func<torch.Tensor, nativeint> =
        let t = Expression.Parameter(typeof<torch.Tensor>, "t")
        Expression.Lambda<Func<torch.Tensor, nativeint>>(Expression.Field(t, handleField), t).Compile()

    /// Points a managed tensor object (a module's Parameter or buffer) at another native handle.
    let setHandle: Action<torch.Tensor, nativeint> =
        let t = Expression.Parameter(typeof<torch.Tensor>, "t")
        let h = Expression.Parameter(typeof<nativeint>, "h")
        Expression.Lambda<Action<torch.Tensor, nativeint>>(Expression.Assign(Expression.Field(t, handleField), h), t, h).Compile()

    /// True for TorchSharp module types implemented in native code (LSTM, GRU, Embedding,
    /// Transformer, ...): they compute with parameters held inside libtorch, which the managed
    /// Parameter objects only mirror, so rebinding those objects changes nothing.
    let isNative (t: Type) : bool =
        t.Assembly = typeof<torch.Tensor>.Assembly
        && t.GetConstructors(BindingFlags.Public ||| BindingFlags.NonPublic ||| BindingFlags.Instance)
           |> Array.exists (fun c ->
               let ps = c.GetParameters()
               ps.Length >= 2 && ps.[0].ParameterType = typeof<nativeint> && ps.[1].ParameterType = typeof<nativeint>)

    /// The state key (relative to the adapter) for a TorchSharp name: <c>0.weight</c> becomes <c>0/weight</c>.
    let keyOf (moduleType: Type) (torchName: string) : string =
        let key = torchName.Replace('.', '/')
        match Key.problem key with
        | None -> key
        | Some why ->
            raise (
                ArgumentException(
                    sprintf
                        "The %s has a parameter or buffer named '%s' that cannot become a state key (%s). Name submodules, parameters and buffers with letters, digits and underscores."
                        moduleType.Name torchName why
                )
            )

    /// Serialises every use of torch's global generator by the adapter (seeded construction and
    /// the dropout probe), which libtorch shares across threads.
    let globalRng = obj ()

    /// Runs f with torch's global generator seeded, restoring the generator's previous state so
    /// the caller's own random stream is unaffected.
    let withGlobalSeed (seed: int64) (f: unit -> 'T) : 'T =
        lock globalRng (fun () ->
            use saved = torch.random.get_rng_state ()
            try
                torch.random.manual_seed seed |> ignore
                f ()
            finally
                torch.random.set_rng_state saved)

    /// The first line of a native error, which names the shapes; the rest is a C++ backtrace.
    let firstLine (e: exn) : string =
        let m = e.Message
        match m.IndexOf '\n' with
        | -1 -> m
        | i -> m.Substring(0, i).TrimEnd()

/// The configuration of a TorchSharp LSTM, read from its parameters once.
type internal LstmShape =
    {
        InputSize: int64
        HiddenSize: int64
        Layers: int
        Directions: int
        HasBias: bool
        BatchFirst: bool
    }

/// A functional LSTM with PyTorch's equations and gate order (i, f, g, o), computing from the
/// tensors it is given: TorchSharp's LSTM runs inside libtorch on its own parameters.
module internal LstmFunctional =

    let private suffix (direction: int) = if direction = 1 then "_reverse" else ""

    /// The parameter names of one layer and direction: weight_ih, weight_hh, bias_ih, bias_hh.
    let names (layer: int) (direction: int) =
        let s = sprintf "l%d%s" layer (suffix direction)
        "weight_ih_" + s, "weight_hh_" + s, "bias_ih_" + s, "bias_hh_" + s

    /// Reads the shape from a template LSTM's parameter names and shapes.
    let shapeOf (lstm: Modules.LSTM) (parameters: (string * int64[]) list) : LstmShape =
        let shapes = dict parameters
        let layers = parameters |> List.filter (fun (n, _) -> n.StartsWith "weight_ih_l" && not (n.EndsWith "_reverse")) |> List.length
        let batchFirst =
            match typeof<Modules.LSTM>.GetField("_batch_first", BindingFlags.NonPublic ||| BindingFlags.Instance) with
            | null -> raise (InvalidOperationException "TorchModule cannot read batch_first from this TorchSharp LSTM (field _batch_first is missing).")
            | f -> f.GetValue lstm :?> bool
        {
            InputSize = shapes.["weight_ih_l0"].[1]
            HiddenSize = shapes.["weight_hh_l0"].[1]
            Layers = layers
            Directions = (if shapes.ContainsKey "weight_ih_l0_reverse" then 2 else 1)
            HasBias = shapes.ContainsKey "bias_ih_l0"
            BatchFirst = batchFirst
        }

    /// Runs the LSTM: input (seq, batch, features), (batch, seq, features) when batch-first, or
    /// (seq, features) unbatched; returns (output, h_n, c_n) as TorchSharp's LSTM does.
    let forward (shape: LstmShape) (param: string -> torch.Tensor) (x: torch.Tensor) (h0: torch.Tensor) (c0: torch.Tensor) =
        let unbatched = x.Dimensions = 2L
        let seqFirst = if unbatched then x.unsqueeze 1L elif shape.BatchFirst then x.transpose(0L, 1L) else x
        let steps = int seqFirst.shape.[0]
        let batch = seqFirst.shape.[1]
        let stateShape = [| int64 (shape.Layers * shape.Directions); batch; shape.HiddenSize |]
        let initial (given: torch.Tensor) =
            if isNull given then torch.zeros(stateShape, dtype = x.dtype)
            elif unbatched then given.unsqueeze 1L
            else given
        let h0 = initial h0
        let c0 = initial c0
        let mutable layerInput = seqFirst
        let hs = ResizeArray()
        let cs = ResizeArray()
        for layer in 0 .. shape.Layers - 1 do
            let outputs =
                [| for direction in 0 .. shape.Directions - 1 do
                    let wih, whh, bih, bhh = names layer direction
                    let projected = layerInput.matmul (param(wih).t ())
                    let projected = if shape.HasBias then projected.add (param bih) else projected
                    let recurrent = param(whh).t ()
                    let index = layer * shape.Directions + direction
                    let mutable h = h0.[int64 index]
                    let mutable c = c0.[int64 index]
                    let out = Array.zeroCreate steps
                    let order = if direction = 0 then [| 0 .. steps - 1 |] else [| steps - 1 .. -1 .. 0 |]
                    for t in order do
                        let gates = projected.[int64 t].add (h.matmul recurrent)
                        let gates = if shape.HasBias then gates.add (param bhh) else gates
                        let chunks = gates.chunk(4L, -1L)
                        c <- chunks.[1].sigmoid().mul(c).add (chunks.[0].sigmoid().mul (chunks.[2].tanh ()))
                        h <- chunks.[3].sigmoid().mul (c.tanh ())
                        out.[t] <- h
                    hs.Add h
                    cs.Add c
                    torch.stack(out, 0L) |]
            layerInput <- if outputs.Length = 1 then outputs.[0] else torch.cat(outputs, -1L)
        let hN = torch.stack(hs, 0L)
        let cN = torch.stack(cs, 0L)
        if unbatched then layerInput.squeeze 1L, hN.squeeze 1L, cN.squeeze 1L
        elif shape.BatchFirst then layerInput.transpose(0L, 1L), hN, cN
        else layerInput, hN, cN

/// One parameter or buffer of the wrapped module: its state key (relative to the adapter), the
/// TorchSharp object the module computes with, and the shape and dtype the state must hold.
type internal TorchEntry =
    {
        Key: string
        TorchName: string
        Slot: torch.Tensor
        Shape: int64[]
        DType: torch.ScalarType
        IsBuffer: bool
    }

/// How the adapter runs the wrapped module.
type internal Execution =
    /// A managed module tree: its Parameter and buffer objects are pointed at the state tensors
    /// for the duration of a call.
    | Rebind
    /// TorchSharp's native LSTM, replaced by a functional LSTM over the state tensors.
    | FunctionalLstm of LstmShape

/// A TorchSharp module used as a Ninjax module (as ninjax's FromFlax/FromHaiku): its parameters
/// and buffers are state entries under the adapter's path (<c>model/enc/0/weight</c> for
/// TorchSharp's <c>0.weight</c>), created on first use from the call's seed, and every call
/// computes with exactly those tensors, so Nj.grad differentiates with respect to them.
/// <para>Managed TorchSharp modules of any kind work (Linear, Conv1d/2d/3d, LayerNorm,
/// BatchNorm1d/2d/3d, Dropout, Sequential, your own modules built from them): for the duration of
/// a call their Parameter and buffer objects are pointed at the state's tensors, without copying
/// them. Of the modules TorchSharp implements natively only LSTM works (through a functional
/// LSTM); others (GRU, RNN, Embedding, MultiheadAttention, Transformer) are rejected when the
/// adapter is built.</para>
/// <para>In training mode (the default) buffers such as BatchNorm's running statistics are
/// updated on a copy and written back to the state; in eval mode they are read from it.</para>
[<AllowNullLiteral>]
type TorchModule<'M when 'M :> torch.nn.Module>(make: Func<'M>, [<Optional; DefaultParameterValue(null: string)>] name: string) as this =
    inherit Ninjax.Module(name)

    let typeName = typeof<'M>.Name

    let build () : 'M =
        if isNull make then raise (ArgumentNullException("make", "Give a function that constructs the TorchSharp module."))
        let m = make.Invoke()
        if isNull (box m) then raise (InvalidOperationException(sprintf "The constructor given to %O returned null." this))
        m

    /// The template the adapter computes with; its own parameter tensors are never read.
    let template = build ()

    let entriesOf (m: torch.nn.Module) : TorchEntry[] =
        let ps =
            m.named_parameters ()
            |> Seq.map (fun struct (n, p) -> n, (p :> torch.Tensor), false)
        let bs = m.named_buffers () |> Seq.map (fun struct (n, b) -> n, b, true)
        Seq.append ps bs
        |> Seq.map (fun (n, t, isBuffer) ->
            { Key = TorchInterop.keyOf (m.GetType()) n; TorchName = n; Slot = t; Shape = t.shape; DType = t.dtype; IsBuffer = isBuffer })
        |> Array.ofSeq

    let entries = entriesOf template

    do
        let dup = entries |> Array.countBy (fun e -> e.Key) |> Array.tryFind (fun (_, n) -> n > 1)
        match dup with
        | Some(k, _) ->
            raise (ArgumentException(sprintf "Two parameters or buffers of the %s map to the same state key '%s'." typeName k))
        | None -> ()
        // Known before any call, so Target.Module leaves them out even for a loaded state.
        this.DeclareBuffers [| for e in entries do if e.IsBuffer then e.Key |]

    let execution =
        match box template with
        | :? Modules.LSTM as lstm ->
            let shape = LstmFunctional.shapeOf lstm [ for e in entries -> e.TorchName, e.Shape ]
            if shape.Layers > 1 then
                // TorchSharp keeps the dropout between layers inside libtorch, out of reach; probe
                // for it so the functional LSTM never silently drops it.
                let differs =
                    TorchInterop.withGlobalSeed 0L (fun () ->
                        use _ = torch.no_grad ()
                        use scope = torch.NewDisposeScope()
                        let wasTraining = lstm.training
                        lstm.train true
                        let x = torch.randn(3L, 2L, shape.InputSize) |> fun x -> if shape.BatchFirst then x.transpose(0L, 1L) else x
                        let struct (a, _, _) = lstm.forward(x, Nullable())
                        let struct (b, _, _) = lstm.forward(x, Nullable())
                        lstm.train wasTraining
                        not (a.allclose(b, 0.0, 0.0)))
                if differs then
                    raise (
                        NotSupportedException(
                            sprintf "%O wraps an LSTM with dropout between its %d layers, which TorchSharp keeps inside libtorch; build it with dropout = 0.0 (and add Dropout between separate LSTMs if needed)." this shape.Layers
                        )
                    )
            FunctionalLstm shape
        | _ ->
            let offending =
                Seq.append [ struct ("", template :> torch.nn.Module) ] (template.named_modules ())
                |> Seq.tryFind (fun struct (_, m) -> TorchInterop.isNative (m.GetType()))
            match offending with
            | Some(struct (path, m)) ->
                raise (
                    NotSupportedException(
                        sprintf
                            "%O cannot wrap the TorchSharp %s%s: TorchSharp implements it in native code on parameters of its own, so it cannot compute with the state's tensors. Of the native modules only LSTM is supported (as the wrapped module itself); use managed modules (Linear, Conv2d, LayerNorm, BatchNorm, ...) or Ninjax layers instead."
                            this (m.GetType().Name) (if path = "" then "" else sprintf " at '%s'" path)
                    )
                )
            | None -> Rebind

    let hasBuffers = entries |> Array.exists (fun e -> e.IsBuffer)

    /// Serialises calls: the template's Parameter objects are shared by every call.
    let gate = obj ()

    /// The initial values of every entry, from a fresh module constructed under a seed drawn from
    /// the purified call, so the call's seed decides them.
    let initialValues () : torch.Tensor[] =
        let seed = Ambient.exec Prog.rngSeed
        TorchInterop.withGlobalSeed (int64 seed) (fun () ->
            let fresh = build ()
            try
                let made = entriesOf fresh
                let sameLayout =
                    made.Length = entries.Length
                    && Array.forall2 (fun (a: TorchEntry) (b: TorchEntry) -> a.Key = b.Key && a.Shape = b.Shape && a.DType = b.DType) made entries
                if not sameLayout then
                    raise (
                        InvalidOperationException(
                            sprintf
                                "The constructor given to %O built a different module the second time (entries %s, then %s); it must build the same architecture on every call."
                                this (entries |> Array.map (fun e -> e.Key) |> String.concat ", ") (made |> Array.map (fun e -> e.Key) |> String.concat ", ")
                        )
                    )
                made |> Array.map (fun e -> e.Slot.detach ())
            finally
                fresh.Dispose())

    let mutable training = true

    /// The state tensors of every entry, created on first use; checks their shape and dtype.
    member private this.StateValues() : torch.Tensor[] =
        let mutable fresh: torch.Tensor[] = null
        // Outside init a missing entry is an error the core names; drawing a seed first would
        // report a missing seed instead.
        let creating = Ambient.exec Prog.creating
        entries
        |> Array.mapi (fun i e ->
            let v =
                if creating then
                    this.Get(
                        e.Key,
                        fun () ->
                            if isNull fresh then fresh <- initialValues ()
                            fresh.[i]
                    )
                else this.Get e.Key
            if v.dtype <> e.DType || not (Shape.is e.Shape v) then
                raise (
                    ArgumentException(
                        sprintf
                            "State entry '%s/%s' has shape %s dtype %O, but the %s's '%s' needs shape %s dtype %O."
                            this.Path e.Key (Text.shape v) v.dtype typeName e.TorchName (Text.dims e.Shape) e.DType
                    )
                )
            v)

    /// Runs f on the template with its parameters and buffers pointed at the state tensors.
    member private this.Rebound(isTraining: bool, describe: unit -> string, f: 'M -> 'R) : 'R =
        match execution with
        | FunctionalLstm _ ->
            raise (
                NotSupportedException(
                    sprintf "%O wraps TorchSharp's native LSTM, which cannot compute with the state's tensors; call Forward or ForwardLstm, which run a functional LSTM." this
                )
            )
        | Rebind -> ()
        let values = this.StateValues()
        let writeBack = isTraining && hasBuffers
        let bound: torch.Tensor[] = Array.zeroCreate entries.Length
        let result =
            lock gate (fun () ->
                if template.training <> isTraining then template.train isTraining
                let originals = entries |> Array.map (fun e -> TorchInterop.getHandle.Invoke e.Slot)
                try
                    for i in 0 .. entries.Length - 1 do
                        let v = values.[i]
                        // A buffer the module may update in place gets a copy (the state is
                        // immutable); everything else gets a new handle on the very same tensor
                        // (to_type to its own dtype returns the tensor itself), so autograd links
                        // the output to the state's tensors and nothing is copied.
                        bound.[i] <- if entries.[i].IsBuffer && writeBack then v.detach().clone() else v.to_type v.dtype
                        TorchInterop.setHandle.Invoke(entries.[i].Slot, TorchInterop.getHandle.Invoke bound.[i])
                    try
                        f template
                    with :? ExternalException as e ->
                        raise (ArgumentException(sprintf "%O (a TorchSharp %s) failed on %s: %s" this typeName (describe ()) (TorchInterop.firstLine e), e))
                finally
                    for i in 0 .. entries.Length - 1 do
                        TorchInterop.setHandle.Invoke(entries.[i].Slot, originals.[i])
                        if not (isNull bound.[i]) && not (entries.[i].IsBuffer && writeBack) then bound.[i].Dispose())
        if writeBack then
            for i in 0 .. entries.Length - 1 do
                if entries.[i].IsBuffer then this.Put(entries.[i].Key, bound.[i]) |> ignore
        result

    /// True when calls run the module in training mode (the default, as in TorchSharp): buffers
    /// such as running statistics are updated and written back to the state.
    member _.Training
        with get () = training
        and set (value: bool) = training <- value

    /// Switches to training mode.
    member _.Train() = training <- true

    /// Switches to eval mode: buffers are read from the state and never written.
    member _.Eval() = training <- false

    // Read-only lists rather than F# lists, so C# code sees no F# type.
    /// The state keys of the wrapped module's parameters, RELATIVE to the adapter (<c>0/weight</c>,
    /// ...), known without a state (<c>ParameterKeys(state)</c> gives them absolutely).
    member _.ParameterNames: IReadOnlyList<string> = [ for e in entries do if not e.IsBuffer then e.Key ]

    /// The state keys of the wrapped module's buffers, RELATIVE to the adapter
    /// (<c>running_mean</c>, ...): declared buffers, which Target.Module leaves out.
    member _.BufferNames: IReadOnlyList<string> = [ for e in entries do if e.IsBuffer then e.Key ]

    /// Runs any function of the wrapped module (for forward signatures other than tensor to
    /// tensor) with the module computing on the state's tensors, in the given mode.
    member this.Call(f: Func<'M, 'R>, isTraining: bool) : 'R =
        if isNull f then raise (ArgumentNullException("f"))
        this.Rebound(isTraining, (fun () -> "the function given to Call"), f.Invoke)

    /// Runs any function of the wrapped module in the adapter's current mode.
    member this.Call(f: Func<'M, 'R>) : 'R = this.Call(f, training)

    /// Applies the module to one tensor in the given mode. For an LSTM this is its output sequence.
    member this.Forward(x: torch.Tensor, isTraining: bool) : torch.Tensor =
        if isNull (box x) then raise (ArgumentNullException("x"))
        match execution with
        | FunctionalLstm _ ->
            let struct (output, _, _) = this.ForwardLstm x
            output
        | Rebind ->
            match box template with
            | :? torch.nn.Module<torch.Tensor, torch.Tensor> as m ->
                this.Rebound(isTraining, (fun () -> sprintf "an input of shape %s" (Text.shape x)), fun _ -> m.call x)
            | _ ->
                raise (
                    NotSupportedException(
                        sprintf "%O wraps a %s, which does not map one tensor to one tensor; use %s instead." this typeName (Text.code (Ambient.language ()) "Call(fun m -> m.forward(...))" "Call(m => m.forward(...))")
                    )
                )

    /// Applies the module to one tensor in the adapter's current mode.
    member this.Forward(x: torch.Tensor) : torch.Tensor = this.Forward(x, training)

    /// Runs a wrapped LSTM: input (seq, batch, features), or (batch, seq, features) when it was
    /// built batch-first, or (seq, features); optional initial hidden and cell states of shape
    /// (layers * directions, batch, hidden). Returns (output, h_n, c_n) as TorchSharp does, as a
    /// struct tuple (a ValueTuple in C#: <c>var (output, h, c) = lstm.ForwardLstm(x);</c>).
    member this.ForwardLstm
        (
            x: torch.Tensor,
            [<Optional; DefaultParameterValue(null: torch.Tensor)>] h0: torch.Tensor,
            [<Optional; DefaultParameterValue(null: torch.Tensor)>] c0: torch.Tensor
        ) : struct (torch.Tensor * torch.Tensor * torch.Tensor) =
        match execution with
        | Rebind -> raise (NotSupportedException(sprintf "%O wraps a %s, not an LSTM; use Forward or Call." this typeName))
        | FunctionalLstm shape ->
            if isNull (box x) then raise (ArgumentNullException("x"))
            let n = shape.InputSize
            let expected =
                if shape.BatchFirst then sprintf "(batch, seq, %d) or (seq, %d)" n n
                else sprintf "(seq, batch, %d) or (seq, %d)" n n
            if (x.Dimensions <> 2L && x.Dimensions <> 3L) || x.shape.[x.shape.Length - 1] <> shape.InputSize then
                raise (ArgumentException(sprintf "%O (an LSTM) expects input of shape %s; it got shape %s." this expected (Text.shape x), "x"))
            if isNull (box h0) <> isNull (box c0) then
                raise (ArgumentException(sprintf "%O needs both h0 and c0, or neither." this))
            if not (isNull (box h0)) then
                let batch = if x.Dimensions = 2L then [||] else [| x.shape.[if shape.BatchFirst then 0 else 1] |]
                let want = Array.concat [ [| int64 (shape.Layers * shape.Directions) |]; batch; [| shape.HiddenSize |] ]
                for nameOf, t in [ "h0", h0; "c0", c0 ] do
                    if t.shape <> want then
                        raise (ArgumentException(sprintf "%O expects %s of shape %s for input of shape %s; it got shape %s." this nameOf (Text.dims want) (Text.shape x) (Text.shape t), nameOf))
            let values = this.StateValues()
            let byName = Dictionary<string, torch.Tensor>()
            entries |> Array.iteri (fun i e -> byName.[e.TorchName] <- values.[i])
            let output, h, c = LstmFunctional.forward shape (fun n -> byName.[n]) x h0 c0
            struct (output, h, c)

/// F#-shaped members of TorchModule, kept off the class itself so that C# code sees no F# type
/// (C# gets its own in the Ninjax.CSharp facade).
[<AutoOpen>]
module TorchModuleExtensions =

    type TorchModule<'M when 'M :> torch.nn.Module> with

        /// Gradient targets selecting the parameters only, one key each (the same keys as
        /// <c>Target.Module enc</c>, which leaves buffers out too): <c>Nj.grad loss enc.ParameterTargets x</c>.
        member this.ParameterTargets: Target list = [ for k in this.ParameterNames -> Target.Key(this.Path + "/" + k) ]
