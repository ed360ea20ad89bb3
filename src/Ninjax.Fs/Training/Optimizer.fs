namespace Ninjax

open System
open System.Collections.Concurrent
open System.Collections.Generic
open System.Runtime.InteropServices
open System.Text.RegularExpressions
open TorchSharp

/// A stable 64-bit fingerprint (FNV-1a) of a list of keys; unlike String.GetHashCode it is the
/// same in every process, so it can be stored in checkpoints.
module internal Fingerprint =
    /// Where an optimizer keeps the fingerprint of its parameter keys, relative to its path.
    [<Literal>]
    let Key = "targets"

    let private mix (h: uint64) (key: string) : uint64 =
        let mutable h = h
        for c in key do
            h <- (h ^^^ uint64 c) * 0x100000001b3UL
        (h ^^^ 10UL) * 0x100000001b3UL

    let ofKeys (keys: string list) : int64 = keys |> List.fold mix 0xcbf29ce484222325UL |> int64

    /// ofKeys of a state's keys, without listing them.
    let ofState (state: State) : int64 = state.Entries |> Map.fold (fun h k _ -> mix h k) 0xcbf29ce484222325UL |> int64

/// What one optimizer step reports.
type OptimizerMetrics =
    {
        /// The loss before the update (detached); a data-parallel optimizer's is the mean over ranks.
        Loss: torch.Tensor
        /// The global L2 norm of the gradients (averaged across ranks when data-parallel) before
        /// any transformation (so before gradient clipping), in the loss's dtype. A fused step
        /// sums the squares while it reads the gradients; otherwise the optimizer makes a pass.
        GradNorm: torch.Tensor
        /// The learning rate of this update, when the transformation has one
        /// (Optax.scaleByLearningRate records it).
        LearningRate: float option
    }

/// What the optimizer modules share: the F# <see cref="T:Ninjax.Optimizer"/> and the C#
/// <c>Ninjax.CSharp.OptimizerModule</c> are thin, language-shaped faces of this machinery, so that
/// neither inherits the other's F#- or C#-shaped members. It differentiates a loss with respect
/// to targets, turns the gradients into updates with a gradient transformation, writes the new
/// parameters, and keeps the transformation's state under its own path
/// (<c>model/opt/mu/model/h1/w</c>, <c>model/opt/count</c>). The state is created on first use,
/// so Nj.init creates it (and leaves the parameters as they were initialised). Everything under
/// its path is optimizer state (EntryKind.OptimizerState): Target.Module never differentiates it.
/// Given a communicator (<c>dataParallel</c>) it trains data-parallel: before every update it
/// averages the gradients across the job's ranks (one all-reduce over one flat buffer, the loss
/// folded in), so every rank applies the same update and the parameters stay bit-identical
/// everywhere; the metrics are then the ranks' averages.
[<AbstractClass; AllowNullLiteral>]
type OptimizerBase internal (transform: GradientTransformation, name: string, dataParallel: Communicator) as this =
    inherit Module(name)

    do
        if isNull (box transform) then
            raise (
                ArgumentNullException(
                    "transform",
                    sprintf "An optimizer needs a gradient transformation, such as %s." (Text.code (Ambient.language ()) "Optax.adam 1e-3" "Optimizers.Adam(1e-3)")
                )
            )
        this.DeclareOptimizerState()

    // Targets that would include the optimizer's own state, rewritten once per target key.
    let excluding = ConcurrentDictionary<string, Target>()

    // The transformation's state keys for each set of parameter keys, relative to the optimizer
    // and absolute (strings only, never tensors), so that a step concatenates none of them.
    let stateKeys = ConcurrentDictionary<int64, struct (string[] * string[])>()

    // The fingerprint entry last found to match, and its value: the entry is written once, at
    // init, so later steps that see the same tensor need not read it again. Weak, so that the
    // optimizer object never keeps a state's tensor alive.
    let mutable verified: struct (WeakReference<torch.Tensor> * int64) = struct (WeakReference<torch.Tensor>(null), 0L)

    // The optimizer state last handed to the transformation and its tensors: a donating loop's
    // fused step updates them in place, so the next step reads the same tensors and reuses the
    // state object instead of building a new map. Weak, as above.
    let mutable lastState: WeakReference<State> = WeakReference<State>(null)
    let mutable lastValues: torch.Tensor[] = [||]

    /// Errors about the transformation's state name keys relative to this optimizer; say which.
    let located (path: string) (e: exn) : exn =
        let message = sprintf "In optimizer '%s' (its state keys are relative to that path): %s" path e.Message
        match e with
        | :? KeyNotFoundException -> KeyNotFoundException(message, e) :> exn
        | :? ArgumentOutOfRangeException -> e
        | :? ArgumentException -> ArgumentException(message, e) :> exn
        | _ -> e

    /// The gradient transformation.
    member internal _.Transformation = transform

    /// A key target that selects this optimizer's own state is narrowed to exclude it, so that
    /// <c>Target.Key "model"</c> works when the optimizer lives under <c>model</c>
    /// (<c>Target.Module model</c> leaves optimizer state out by itself).
    member internal this.Narrow(targets: Target list) : Target list =
        if isNull (box targets) then raise (ArgumentNullException("targets"))
        let own = this.Path
        let narrow (prefix: string) (original: Target) =
            if prefix = own then
                raise (ArgumentException(sprintf "The gradient target %O is the optimizer '%s' itself; target the parameters it should update." original own, "targets"))
            elif Key.isUnder prefix own then
                excluding.GetOrAdd(
                    prefix,
                    fun p ->
                        let rest = own.Substring(p.Length + 1)
                        let pattern = "^" + Regex.Escape p + "(?:$|/(?!" + Regex.Escape rest + "(?:/|$)))"
                        Target.Pattern(Regex(pattern, RegexOptions.Compiled ||| RegexOptions.CultureInvariant))
                )
            else original
        targets
        |> List.map (fun t ->
            match t with
            | Target.Key k -> narrow k t
            | Target.Module m when m.Path = own -> narrow m.Path t
            | Target.Module _ -> t
            | Target.Pattern _ -> t)

    /// The communicator across whose ranks the gradients are averaged, or null.
    member _.DataParallel = dataParallel

    /// Apply of both faces: the gradients averaged across ranks when data-parallel, the
    /// transformation's update, the new parameters written, the optimizer's state advanced (see
    /// Optimizer.Apply).
    member internal this.ApplyGrads(parameters: State, grads: State) : State * float option =
        if isNull parameters then raise (ArgumentNullException("parameters"))
        if isNull grads then raise (ArgumentNullException("grads"))
        let struct (updated, learningRate, _) = this.Update(parameters, fst (this.Average(grads, None)))
        updated, learningRate

    /// Gradients (and the loss) averaged across ranks when data-parallel. A call that ignores
    /// changes (Nj.init, the discovery run of a gradient or branch) discards the update, so it
    /// skips the exchange: initialising then involves no other rank.
    member private _.Average(grads: State, loss: torch.Tensor option) : State * torch.Tensor option =
        if isNull dataParallel || (Ambient.exec Prog.env).Flags.Ignore then grads, loss
        else DataParallel.averageWith dataParallel grads loss

    /// The step itself: the new parameters, the learning rate, and the gradients' sum of squares
    /// when the fused step computed it.
    member private this.Update(parameters: State, grads: State) : struct (State * float option * float voption) =
        let fingerprint = Fingerprint.ofState parameters
        let mutable fresh: State = null
        let initial () =
            if isNull fresh then fresh <- transform.Init parameters
            fresh
        let struct (keys, absoluteKeys) =
            match stateKeys.TryGetValue fingerprint with
            | true, known -> known
            | _ ->
                let keys = initial () |> State.keys |> Array.ofList
                stateKeys.GetOrAdd(fingerprint, struct (keys, keys |> Array.map (fun k -> this.Path + "/" + k)))
        let stored = this.Get(Fingerprint.Key, fun () -> torch.tensor fingerprint)
        let matches =
            let struct (last, value) = verified
            match last.TryGetTarget() with
            | true, t when obj.ReferenceEquals(t, stored) && value = fingerprint -> true
            | _ ->
                let ok = stored.ToInt64() = fingerprint
                if ok then verified <- struct (WeakReference<torch.Tensor>(stored), fingerprint)
                ok
        let state =
            if matches then
                let values = Ambient.exec (Prog.getMany absoluteKeys (fun i -> (initial ()).[keys.[i]]))
                match lastState.TryGetTarget() with
                | true, last when values.Length = lastValues.Length && Array.forall2 (fun a b -> obj.ReferenceEquals(a, b)) values lastValues -> last
                | _ ->
                    let built = Array.zip keys values |> State.ofValidPairs
                    lastState <- WeakReference<State>(built)
                    lastValues <- values
                    built
            else
                // The targets changed: read everything the optimizer holds so the transformation
                // can say exactly which keys differ.
                this.Values |> State.filter (fun k _ -> k <> Fingerprint.Key)
        // In a donating call (outside any gradient, free to modify) the fused step may write
        // into the tensors the caller handed over instead of allocating new ones.
        let env = Ambient.exec Prog.env
        let donation = env.Donation
        let mayOverwrite = Prog.overwriteGrant env
        // Targets that changed fail before anything is written in place: the transformation runs
        // without overwriting, to say exactly which keys differ, and its result is dropped.
        let step (mayOverwrite: torch.Tensor -> bool) =
            try
                match transform.Apply with
                | Some fused -> fused { Grads = grads; OptState = state; Params = parameters; GradScale = 1.0; MayOverwrite = mayOverwrite }
                | None ->
                    let updates, next = transform.Update grads state parameters
                    { Params = Optax.applyUpdates parameters updates; OptState = next; GradSumOfSquares = ValueNone }
            with
            | :? ArgumentException
            | :? KeyNotFoundException as e -> raise (located this.Path e)
        if not matches then
            step (fun _ -> false) |> ignore
            raise (
                ArgumentException(
                    sprintf "Optimizer '%s' was initialised for other parameters than it is now given (%s): the targets changed. Keep the targets the same between calls, or start the optimizer from a fresh state." this.Path (String.Join(", ", State.keys parameters)),
                    "parameters"
                )
            )
        let { Params = updated; OptState = next; GradSumOfSquares = gradSumOfSquares } = step mayOverwrite
        // A fused step that wrote everything in place hands back the very states it was given.
        let stateInPlace = obj.ReferenceEquals(next, state)
        if not (isNull donation) then
            // What the step wrote into: the tensors it hands back that it was given. A state handed
            // back whole holds only tensors it was given (no lookups then).
            let recordFrom (given: State) (returned: State) =
                if obj.ReferenceEquals(given, returned) then
                    for KeyValue(_, t) in given.Entries do
                        if mayOverwrite t then donation.Overwrote t
                else
                    let entries = given.Entries
                    for KeyValue(k, t) in returned.Entries do
                        match entries.TryGetValue k with
                        | true, old when obj.ReferenceEquals(t, old) && mayOverwrite old -> donation.Overwrote t
                        | _ -> ()
            recordFrom parameters updated
            recordFrom state next
        // Written back even when updated in place: the keys count as modified (tracking, and
        // donation's check that no other key holds a tensor it overwrote), the map stays as it is.
        Ambient.exec (Prog.putState updated)
        // The state's tensors were read in this step, so the entries still hold them: marked
        // modified without looking them up again.
        if stateInPlace then Ambient.exec (Prog.markRewritten absoluteKeys lastValues)
        else this.PutM(next |> State.toSeq |> Seq.map (fun (k, v) -> this.Path + "/" + k, v) |> State.ofValidPairs)
        let learningRate =
            match next.Entries.TryGetValue Optax.LearningRateKey with
            | true, lr -> Some(lr.ToDouble())
            | _ ->
                next
                |> State.toSeq
                |> Seq.tryFind (fun (k, _) -> k.EndsWith("/" + Optax.LearningRateKey, StringComparison.Ordinal))
                |> Option.map (fun (_, lr) -> lr.ToDouble())
        struct (updated, learningRate, gradSumOfSquares)

    member private this.Step(loss: torch.Tensor, parameters: State, grads: State) : OptimizerMetrics =
        let grads, loss =
            match this.Average(grads, Some loss) with
            | averaged, Some averagedLoss -> averaged, averagedLoss
            | averaged, None -> averaged, loss
        let struct (_, learningRate, gradSumOfSquares) = this.Update(parameters, grads)
        // The fused steps sum the squares as they read the gradients; only a step that did not
        // (an unfused transformation, a parameter on libtorch ops) leaves a pass to make, after
        // the update: that never writes into the gradients (a grant covers the state's tensors,
        // and the gradients are new ones, from Nj.grad or the all-reduce).
        let gradNorm =
            match gradSumOfSquares with
            | ValueSome s -> torch.tensor (sqrt s, dtype = loss.dtype) // as globalNormAs makes it
            | ValueNone -> Optax.globalNormAs loss.dtype grads
        { Loss = loss; GradNorm = gradNorm; LearningRate = learningRate }

    /// One step on a loss of one (tuple) argument: Minimize of both faces.
    member internal this.MinimizeWith(loss: 'A -> torch.Tensor, targets: Target list, arg: 'A) : OptimizerMetrics =
        if isNull (box loss) then raise (ArgumentNullException("loss"))
        let value, parameters, grads = Nj.grad loss (this.Narrow targets) arg
        this.Step(value, parameters, grads)

    /// One step on a loss that also returns an auxiliary value: MinimizeAux of both faces.
    member internal this.MinimizeAuxWith(loss: 'A -> torch.Tensor * 'Aux, targets: Target list, arg: 'A) : OptimizerMetrics * 'Aux =
        if isNull (box loss) then raise (ArgumentNullException("loss"))
        let value, parameters, grads, aux = Nj.gradAux loss (this.Narrow targets) arg
        this.Step(value, parameters, grads), aux

/// A module that owns an optimizer (ninjax's OptaxModule), for F#:
/// <c>this.Sub("opt", fun () -> Optimizer(Optax.adam 1e-3))</c>, then
/// <c>opt.Minimize(this.Loss, targets, (x, y))</c> in a purified call. It differentiates the loss
/// with respect to the targets, turns the gradients into updates with the transformation, writes
/// the new parameters, and keeps the transformation's state under its own path
/// (<c>model/opt/mu/model/h1/w</c>, <c>model/opt/count</c>), created on first use. C# code uses
/// <c>Ninjax.CSharp.OptimizerModule</c>, the same machinery with C# shapes. With
/// <c>dataParallel = comm</c> (a <see cref="Communicator"/>) it trains data-parallel (see
/// <see cref="T:Ninjax.OptimizerBase"/>): <c>Optimizer(Optax.adam 1e-3, dataParallel = comm)</c>.
[<AllowNullLiteral>]
type Optimizer
    (
        transform: GradientTransformation,
        [<Optional; DefaultParameterValue(null: string)>] name: string,
        [<Optional; DefaultParameterValue(null: Communicator)>] dataParallel: Communicator
    ) =
    inherit OptimizerBase(transform, name, dataParallel)

    /// The gradient transformation.
    member _.Transform = transform

    /// Applies gradients to parameters: the transformation's update (creating its state on first
    /// use), the new parameters written to the state, and the optimizer state advanced. Returns
    /// the new parameters and the learning rate used. Both states are keyed by parameter key.
    /// Only the optimizer's own entries for these parameters are read, so a step costs
    /// O(k log n) in a state of n entries; a fingerprint of the parameter keys, stored beside
    /// the moments, catches targets that changed since the state was created. A data-parallel
    /// optimizer first averages the gradients across ranks.
    member this.Apply(parameters: State, grads: State) : State * float option = this.ApplyGrads(parameters, grads)

    /// Takes one optimizer step on <paramref name="loss"/> applied to <paramref name="arg"/>,
    /// with respect to <paramref name="targets"/> (the optimizer's own state is never a target):
    /// <c>opt.Minimize(this.Loss, [ Target.Module h1 ], (x, y))</c>.
    member this.Minimize(loss: 'A -> torch.Tensor, targets: Target list, arg: 'A) : OptimizerMetrics =
        this.MinimizeWith(loss, targets, arg)

    /// Like Minimize, for a loss that also returns an auxiliary value, which is returned beside
    /// the metrics.
    member this.MinimizeAux(loss: 'A -> torch.Tensor * 'Aux, targets: Target list, arg: 'A) : OptimizerMetrics * 'Aux =
        this.MinimizeAuxWith(loss, targets, arg)
