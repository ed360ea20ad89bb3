namespace Ninjax

open System
open System.Collections.Generic
open TorchSharp

/// What a fused optimizer step (GradientTransformation.Apply) is given.
[<NoEquality; NoComparison>]
type FusedStepInput =
    {
        /// The gradients, keyed by parameter key.
        Grads: State
        /// The optimizer state, keyed as the transformation's Init keys it.
        OptState: State
        /// The parameters, keyed by parameter key.
        Params: State
        /// A factor every gradient is multiplied by first (gradient clipping's); 1 leaves the
        /// gradients as they are.
        GradScale: float
        /// Says whether a parameter or optimizer-state tensor was handed over by the caller, so
        /// the step may write its next value into it in place and return it (the Optimizer
        /// module asks this of a donating call); <c>fun _ -> false</c> leaves every input as it was.
        MayOverwrite: torch.Tensor -> bool
    }

/// What a fused optimizer step (GradientTransformation.Apply) returns.
[<Struct; NoEquality; NoComparison>]
type FusedStepResult =
    {
        /// The new parameters, keyed by parameter key.
        Params: State
        /// The new optimizer state.
        OptState: State
        /// The sum of the squares of every gradient element as given (before GradScale and any
        /// weight decay), accumulated in float64 while the step read the gradients: its square
        /// root is the gradients' global norm (Optax.globalNorm's, up to the rounding of another
        /// order of additions) without a pass of its own. ValueNone when the step did not compute
        /// it: a parameter took libtorch ops (not on the CPU, not contiguous, not float32 or
        /// float64). A value option, not a Nullable: this type, like GradientTransformation, is
        /// F#-only (C# code reaches the fused steps through GradientTransform, which runs them),
        /// and a struct with a value option keeps the per-step result free of allocations.
        GradSumOfSquares: float voption
    }

/// A gradient transformation in Optax's shape: two pure functions over states. Parameters,
/// gradients and updates are states keyed by parameter key; the optimizer state is a state whose
/// keys derive from the parameter keys (<c>mu/model/h1/w</c>, <c>nu/model/h1/w</c>) plus the step
/// <c>count</c>, so it can live in a Ninjax state under an optimizer module's path. Neither
/// function changes its inputs.
type GradientTransformation =
    {
        /// Builds the optimizer state for parameters: <c>init params</c>.
        Init: State -> State
        /// Turns gradients (or the updates of the previous transformation in a chain) into
        /// updates: <c>update grads optState params</c> returns <c>updates, newOptState</c>.
        Update: State -> State -> State -> State * State
        /// A fused step some optimizers provide (Adam, AdamW, SGD, RMSprop, and chains of gradient
        /// clipping before one of them): returns the new parameters and optimizer state, the
        /// same as applying Update's updates (up to rounding: it follows torch.optim's order of
        /// operations) in one pass over each parameter's memory, and the gradients' sum of
        /// squares read on the way (see FusedStepResult). The Optimizer module uses it.
        Apply: (FusedStepInput -> FusedStepResult) option
        /// For a stateless transformation whose update multiplies every gradient by one factor
        /// (clipByGlobalNorm, scale, identity): that factor, given the gradients and the factor
        /// already applied to them. A chain of such transformations before one with a fused step
        /// has a fused step too.
        Factor: (State -> float -> float) option
    }

/// Hyperparameters of SGD, named and defaulted as torch.optim.SGD has them.
type SgdOptions =
    {
        /// The learning rate at each step.
        LearningRate: Schedule
        /// The momentum factor; 0 turns momentum off.
        Momentum: float
        /// Dampening of the gradient's contribution to the momentum buffer.
        Dampening: float
        /// L2 penalty: <c>WeightDecay * param</c> is added to the gradient.
        WeightDecay: float
        /// Nesterov momentum (needs Momentum above 0 and Dampening 0).
        Nesterov: bool
    }

    /// SGD with learning rate 0.01 and no momentum, dampening or weight decay.
    static member Default =
        { LearningRate = Schedule.constant 0.01; Momentum = 0.0; Dampening = 0.0; WeightDecay = 0.0; Nesterov = false }

/// Hyperparameters of Adam and AdamW, named and defaulted as torch.optim.Adam has them.
type AdamOptions =
    {
        /// The learning rate at each step.
        LearningRate: Schedule
        /// Decay rate of the first moment.
        Beta1: float
        /// Decay rate of the second moment.
        Beta2: float
        /// Added to the denominator for numerical stability.
        Eps: float
        /// Adam: L2 penalty added to the gradient. AdamW: decoupled weight decay, scaled by the
        /// learning rate and applied to the parameters.
        WeightDecay: float
    }

    /// lr 1e-3, betas (0.9, 0.999), eps 1e-8, no weight decay (torch.optim.Adam's defaults).
    static member Default =
        { LearningRate = Schedule.constant 1e-3; Beta1 = 0.9; Beta2 = 0.999; Eps = 1e-8; WeightDecay = 0.0 }

    /// As Default with weight decay 0.01 (PyTorch's torch.optim.AdamW default).
    static member DefaultW = { AdamOptions.Default with WeightDecay = 0.01 }

/// Hyperparameters of RMSprop, named and defaulted as torch.optim.RMSprop has them.
type RmsPropOptions =
    {
        /// The learning rate at each step.
        LearningRate: Schedule
        /// Smoothing constant of the running average of squared gradients.
        Alpha: float
        /// Added to the denominator for numerical stability.
        Eps: float
        /// L2 penalty: <c>WeightDecay * param</c> is added to the gradient.
        WeightDecay: float
        /// The momentum factor; 0 turns momentum off.
        Momentum: float
        /// Normalise by an estimate of the gradient's variance instead of its second moment.
        Centered: bool
    }

    /// lr 0.01, alpha 0.99, eps 1e-8, no weight decay or momentum, not centered.
    static member Default =
        { LearningRate = Schedule.constant 0.01; Alpha = 0.99; Eps = 1e-8; WeightDecay = 0.0; Momentum = 0.0; Centered = false }

/// Gradient transformations and optimizers in Optax's shape, matching torch.optim's update
/// rules. Every transformation is pure: all math runs in torch ops under no_grad and makes new
/// tensors, never changing the states it is given.
[<RequireQualifiedAccess>]
module Optax =

    /// The key of the step count: an int64 scalar, the number of updates applied so far. Every
    /// transformation that keeps a count uses this key, so all members of a chain share it.
    [<Literal>]
    let CountKey = "count"

    /// The key under which scaleByLearningRate records the learning rate of the latest update
    /// (a float64 scalar), so optimizers can report it.
    [<Literal>]
    let LearningRateKey = "learning_rate"

    // -------------------------------------------------------------------------------------
    // Checks

    let private checkRange (name: string) (value: float) (ok: bool) (why: string) =
        if not ok then raise (ArgumentOutOfRangeException(name, value, sprintf "Invalid %s %g: %s." name value why))

    let private nonNegative (name: string) (value: float) =
        checkRange name value (value >= 0.0 && not (Double.IsInfinity value)) "it must be a finite number >= 0"

    let private unitInterval (name: string) (value: float) =
        checkRange name value (value >= 0.0 && value < 1.0) "it must lie in [0, 1)"

    let private describe (t: torch.Tensor) = sprintf "shape %s dtype %O" (Text.shape t) t.dtype

    /// The names that a prefix's entries belong to, for error messages.
    let private ownersUnder (prefix: string) (state: State) =
        let start = prefix + "/"
        let owners =
            State.keys state
            |> List.filter (fun k -> k.StartsWith(start, StringComparison.Ordinal))
            |> List.map (fun k -> k.Substring start.Length)
        if owners.IsEmpty then "none" else String.Join(", ", owners |> List.truncate 8)

    /// The per-parameter entry <c>prefix/key</c> for every gradient key, checked against the
    /// gradients: every gradient has an entry of its shape and dtype, and no entry is left over.
    let private perParam (prefix: string) (state: State) (grads: State) : (string * torch.Tensor * torch.Tensor) list =
        let found =
            [
                for key, g in State.toSeq grads do
                    let stateKey = prefix + "/" + key
                    match State.tryFind stateKey state with
                    | None ->
                        raise (
                            KeyNotFoundException(
                                sprintf
                                    "Optimizer state has no entry '%s' for the parameter '%s': it was initialised for other parameters (it has '%s' entries for: %s). Keep the optimizer's targets the same between calls, or start it from a fresh state."
                                    stateKey key prefix (ownersUnder prefix state)
                            )
                        )
                    | Some m when m.dtype <> g.dtype || not (Shape.same m g) ->
                        raise (
                            ArgumentException(
                                sprintf
                                    "Optimizer state entry '%s' has %s, but the parameter '%s' has %s. The parameters changed since the optimizer state was initialised; start it from a fresh state."
                                    stateKey (describe m) key (describe g)
                            )
                        )
                    | Some m -> yield key, g, m
            ]
        let start = prefix + "/"
        let stored = state |> State.toMap |> Seq.filter (fun kv -> kv.Key.StartsWith(start, StringComparison.Ordinal)) |> Seq.length
        if stored <> found.Length then
            let stale =
                State.keys state
                |> List.find (fun k -> k.StartsWith(start, StringComparison.Ordinal) && not (State.containsKey (k.Substring start.Length) grads))
            raise (
                ArgumentException(
                    sprintf
                        "Optimizer state holds '%s', but no gradient was given for the parameter '%s': the targets changed since the optimizer state was initialised (gradients were given for: %s). Keep the targets the same between calls, or start the optimizer from a fresh state."
                        stale (stale.Substring start.Length) (String.Join(", ", State.keys grads |> List.truncate 8))
                )
            )
        found

    /// The parameter for a gradient key; an error naming the key when the params lack it.
    let private paramFor (parameters: State) (key: string) (g: torch.Tensor) : torch.Tensor =
        match parameters.Entries.TryGetValue key with
        | false, _ ->
            raise (KeyNotFoundException(sprintf "There is a gradient for '%s' but no parameter with that key was passed to the optimizer." key))
        | true, p when not (Shape.same p g) ->
            raise (ArgumentException(sprintf "The parameter '%s' has %s but its gradient has %s." key (describe p) (describe g)))
        | true, p -> p

    /// The step count stored in an optimizer state.
    let private stepOf (state: State) : int64 =
        match State.tryFind CountKey state with
        | None ->
            raise (
                KeyNotFoundException(
                    sprintf "Optimizer state has no '%s' entry (the step count); was it built by this transformation's Init? Keys: %s." CountKey
                        (String.Join(", ", State.keys state |> List.truncate 8))
                )
            )
        | Some c when c.dtype <> torch.int64 || c.numel () <> 1L ->
            raise (ArgumentException(sprintf "Optimizer state entry '%s' must be an int64 scalar; it has %s." CountKey (describe c)))
        | Some c -> c.ToInt64() // item<T> goes through a TensorAccessor (1.4 us); this is 0.5 us

    let private countState (step: int64) = State.ofSeq [ CountKey, torch.tensor step ]

    let private noGrad (f: unit -> 'T) : 'T =
        use _ = torch.no_grad ()
        f ()

    /// Builds a transformation whose functions run under no_grad and reject null states.
    let private transformation (init: State -> State) (update: State -> State -> State -> State * State) : GradientTransformation =
        let check (name: string) (s: State) =
            if isNull s then raise (ArgumentNullException(name, sprintf "Pass a state for %s (State.empty when there is none)." name))
        {
            Init = fun ps ->
                check "params" ps
                noGrad (fun () -> init ps)
            Update = fun grads state ps ->
                check "grads" grads
                check "state" state
                check "params" ps
                noGrad (fun () -> update grads state ps)
            Apply = None
            Factor = None
        }

    /// Gives a transformation a fused step (see GradientTransformation.Apply).
    let private withApply (apply: FusedStepInput -> FusedStepResult) (t: GradientTransformation) =
        { t with
            Apply =
                Some(fun input ->
                    if isNull (box input.MayOverwrite) then raise (ArgumentNullException("MayOverwrite", "Pass a predicate (fun _ -> false) to keep the inputs unchanged."))
                    if isNull input.Grads || isNull input.OptState || isNull input.Params then
                        raise (ArgumentNullException("input", "Pass grads, the optimizer state and params."))
                    noGrad (fun () -> apply input)) }

    /// Gives a stateless transformation that only scales gradients its factor (see
    /// GradientTransformation.Factor).
    let private withFactor (factor: State -> float -> float) (t: GradientTransformation) = { t with Factor = Some factor }

    let private zerosUnder (prefix: string) (parameters: State) =
        State.toSeq parameters |> Seq.map (fun (k, p) -> prefix + "/" + k, torch.zeros_like p)

    let private mapGrads (f: string -> torch.Tensor -> torch.Tensor) (grads: State) : State = State.map f grads

    // -------------------------------------------------------------------------------------
    // Helpers over states of tensors

    /// The sum of squares of a tensor's elements in one pass over its memory (in float64), when
    /// it is a contiguous float32 or float64 CPU tensor.
    let private directSumOfSquares (t: torch.Tensor) : float voption =
        if Kernels.isDirect torch.float32 t then ValueSome(Kernels.sumOfSquares32 (Kernels.span<float32> t))
        elif Kernels.isDirect torch.float64 t then ValueSome(Kernels.sumOfSquares64 (Kernels.span<float> t))
        else ValueNone

    /// The global L2 norm of a state's tensors, in float64: one pass over each tensor's memory
    /// when they allow it, else one libtorch norm per tensor (in its own dtype), combined.
    let internal globalNormValue (tensors: State) : float =
        let mutable total = 0.0
        let mutable direct = true
        use e = (State.toMap tensors :> seq<_>).GetEnumerator()
        while direct && e.MoveNext() do
            match directSumOfSquares e.Current.Value with
            | ValueSome s -> total <- total + s
            | ValueNone -> direct <- false
        if direct then sqrt total
        else
            noGrad (fun () ->
                let norms = [| for kv in State.toMap tensors -> torch.linalg.vector_norm(kv.Value, 2.0, null, false).to_type torch.float64 |]
                if norms.Length = 0 then 0.0 else torch.linalg.vector_norm(torch.stack norms, 2.0, null, false).ToDouble())

    /// The global L2 norm of a state's tensors as a scalar of <paramref name="dtype"/>.
    let internal globalNormAs (dtype: torch.ScalarType) (tensors: State) : torch.Tensor =
        torch.tensor (globalNormValue tensors, dtype = dtype)

    /// The global L2 norm of all tensors of a state, as a float64 scalar: <c>sqrt(sum of squares)</c>.
    let globalNorm (tensors: State) : torch.Tensor =
        if isNull tensors then raise (ArgumentNullException("tensors"))
        globalNormAs torch.float64 tensors

    /// Adds updates to parameters: <c>param + update</c> per key, in the parameter's dtype. The
    /// keys and shapes must match.
    let applyUpdates (parameters: State) (updates: State) : State =
        if isNull parameters then raise (ArgumentNullException("parameters"))
        if isNull updates then raise (ArgumentNullException("updates"))
        for k in State.keys updates do
            if not (State.containsKey k parameters) then
                raise (KeyNotFoundException(sprintf "There is an update for '%s' but no parameter with that key." k))
        noGrad (fun () ->
            parameters
            |> State.map (fun k p ->
                match State.tryFind k updates with
                | None -> raise (KeyNotFoundException(sprintf "The parameter '%s' has no update; updates were given for: %s." k (String.Join(", ", State.keys updates |> List.truncate 8))))
                | Some u when not (Shape.same u p) ->
                    raise (ArgumentException(sprintf "The update for '%s' has %s but the parameter has %s." k (describe u) (describe p)))
                | Some u -> p.add (if u.dtype = p.dtype then u else u.to_type p.dtype)))

    // -------------------------------------------------------------------------------------
    // Combinators

    /// Passes updates through unchanged and keeps no state.
    let identity: GradientTransformation =
        transformation (fun _ -> State.empty) (fun grads _ _ -> grads, State.empty) |> withFactor (fun _ _ -> 1.0)

    /// Applies transformations in order, each to the updates of the one before. The state is
    /// the union of their states; their keys must differ except the shared step count, which
    /// every member advances the same way.
    let chain (transformations: GradientTransformation list) : GradientTransformation =
        if isNull (box transformations) then raise (ArgumentNullException("transformations"))
        let members = Array.ofList transformations
        members |> Array.iteri (fun i t -> if isNull (box t) then raise (ArgumentNullException("transformations", sprintf "Member %d of the chain is null." i)))
        let init parameters =
            let mutable merged = Map.empty
            for i, t in Array.indexed members do
                for k, v in State.toSeq (t.Init parameters) do
                    match merged.TryFind k with
                    | Some (j, _) when k <> CountKey ->
                        raise (
                            ArgumentException(
                                sprintf
                                    "Members %d and %d of the chain both keep the optimizer state key '%s'. Give one of them its own prefix with %s."
                                    j i k (Text.code (Ambient.language ()) "Optax.scoped" "Optimizers.Scoped")
                            )
                        )
                    | Some _ -> ()
                    | None -> merged <- merged.Add(k, (i, v))
            merged |> Map.map (fun _ (_, v) -> v) |> State.ofMap
        let update grads state parameters =
            let mutable updates = grads
            let mutable newState = Map.empty
            for t in members do
                // Every member reads the state as it was before this update, so the shared count is
                // the same for all of them and each writes the same next count.
                let u, s = t.Update updates state parameters
                updates <- u
                for k, v in State.toSeq s do
                    newState <- newState.Add(k, v)
            updates, State.ofMap newState
        // Scaling members, then one with a fused step: the scales fold into that step's gradient
        // scale, so the chain steps in one pass too (gradient clipping before Adam, say). The
        // step still reads the gradients as given, so its sum of squares is the unclipped one.
        let last = members.Length - 1
        let fused =
            if members.Length = 0 then None
            else
                match members.[last].Apply with
                | Some apply when members |> Array.take last |> Array.forall (fun m -> m.Factor.IsSome) ->
                    let factors = members |> Array.take last |> Array.map (fun m -> m.Factor.Value)
                    Some(fun (input: FusedStepInput) ->
                        let mutable scale = input.GradScale
                        for f in factors do
                            scale <- scale * f input.Grads scale
                        apply { input with GradScale = scale })
                | _ -> None
        let factor =
            if members.Length > 0 && members |> Array.forall (fun m -> m.Factor.IsSome) then
                let factors = members |> Array.map (fun m -> m.Factor.Value)
                Some(fun grads applied ->
                    let mutable scale = applied
                    let mutable total = 1.0
                    for f in factors do
                        let x = f grads scale
                        scale <- scale * x
                        total <- total * x
                    total)
            else None
        let t = transformation init update
        let t = match fused with Some apply -> withApply apply t | None -> t
        match factor with Some f -> withFactor f t | None -> t

    /// Keeps a transformation's state under <c>name/</c>, so that two transformations with the
    /// same keys can be chained.
    let scoped (name: string) (inner: GradientTransformation) : GradientTransformation =
        Key.validateName name
        if isNull (box inner) then raise (ArgumentNullException("inner"))
        let start = name + "/"
        let prefix (s: State) = State.toSeq s |> Seq.map (fun (k, v) -> start + k, v) |> State.ofSeq
        let strip (s: State) =
            State.toSeq s
            |> Seq.filter (fun (k, _) -> k.StartsWith(start, StringComparison.Ordinal))
            |> Seq.map (fun (k, v) -> k.Substring start.Length, v)
            |> State.ofSeq
        transformation
            (fun ps -> prefix (inner.Init ps))
            (fun grads state ps ->
                let u, s = inner.Update grads (strip state) ps
                u, prefix s)

    // -------------------------------------------------------------------------------------
    // Transformations

    /// Multiplies updates by a constant factor.
    let scale (factor: float) : GradientTransformation =
        checkRange "factor" factor (not (Double.IsNaN factor || Double.IsInfinity factor)) "it must be finite"
        transformation (fun _ -> State.empty) (fun grads _ _ -> mapGrads (fun _ g -> g.mul (factor.ToScalar())) grads, State.empty)
        |> withFactor (fun _ _ -> factor)

    /// Multiplies updates by minus the learning rate of the current step (descent). Keeps the
    /// step count and the latest learning rate (<c>learning_rate</c>, float64) in its state.
    let scaleByLearningRate (schedule: Schedule) : GradientTransformation =
        if isNull (box schedule) then raise (ArgumentNullException("schedule"))
        transformation
            (fun _ -> State.ofSeq [ CountKey, torch.tensor 0L; LearningRateKey, torch.tensor (schedule 0L) ])
            (fun grads state _ ->
                let step = stepOf state
                let lr = schedule step
                if Double.IsNaN lr || Double.IsInfinity lr then
                    raise (InvalidOperationException(sprintf "The learning-rate schedule returned %g at step %d; it must be finite." lr step))
                let updates = mapGrads (fun _ g -> g.mul ((-lr).ToScalar())) grads
                updates, State.ofSeq [ CountKey, torch.tensor (step + 1L); LearningRateKey, torch.tensor lr ])

    /// Adds <c>weightDecay * param</c> to the updates. Before moment estimation it is an L2
    /// penalty (torch's weight_decay in SGD, Adam and RMSprop); after it, decoupled weight
    /// decay (AdamW).
    let addDecayedWeights (weightDecay: float) : GradientTransformation =
        nonNegative "weightDecay" weightDecay
        transformation
            (fun _ -> State.empty)
            (fun grads _ ps -> mapGrads (fun k g -> g.add (paramFor ps k g, alpha = weightDecay.ToScalar())) grads, State.empty)

    /// Scales all updates by one factor so that their global norm is at most
    /// <paramref name="maxNorm"/>; updates already within it pass unchanged.
    let clipByGlobalNorm (maxNorm: float) : GradientTransformation =
        checkRange "maxNorm" maxNorm (maxNorm > 0.0 && not (Double.IsInfinity maxNorm)) "it must be a finite number > 0"
        transformation
            (fun _ -> State.empty)
            (fun grads _ _ ->
                let norm = globalNorm grads
                // maxNorm / 0 is infinite, so a zero norm clamps to a factor of 1.
                let factor = torch.tensor(maxNorm, dtype = torch.float64).div(norm).clamp_max (1.0.ToScalar())
                mapGrads (fun _ g -> g.mul (factor.to_type g.dtype)) grads, State.empty)
        |> withFactor (fun grads applied ->
            let norm = abs applied * globalNormValue grads
            if Double.IsNaN norm then nan elif norm > maxNorm then maxNorm / norm else 1.0)

    /// Momentum as torch.optim.SGD computes it: <c>buf = momentum * buf + (1 - dampening) * g</c>
    /// (<c>buf = g</c> at the first step), and the update is <c>buf</c>, or
    /// <c>g + momentum * buf</c> with Nesterov. Keeps <c>trace/&lt;key&gt;</c> and the count.
    let trace (momentum: float) (dampening: float) (nesterov: bool) : GradientTransformation =
        nonNegative "momentum" momentum
        checkRange "dampening" dampening (dampening >= 0.0 && dampening <= 1.0) "it must lie in [0, 1]"
        if nesterov && (momentum <= 0.0 || dampening <> 0.0) then
            raise (ArgumentException(sprintf "Nesterov momentum needs momentum > 0 and dampening 0; got momentum %g, dampening %g." momentum dampening, "nesterov"))
        transformation
            (fun ps -> State.ofSeq (Seq.append [ CountKey, torch.tensor 0L ] (zerosUnder "trace" ps)))
            (fun grads state _ ->
                let step = stepOf state
                let traced = perParam "trace" state grads
                let buffers =
                    traced
                    |> List.map (fun (k, g, buf) ->
                        k, g, (if step = 0L then g else buf.mul(momentum.ToScalar()).add (g, alpha = (1.0 - dampening).ToScalar())))
                let updates =
                    buffers
                    |> List.map (fun (k, g, buf) -> k, (if nesterov then g.add (buf, alpha = momentum.ToScalar()) else buf))
                    |> State.ofSeq
                let newState = buffers |> List.map (fun (k, _, buf) -> "trace/" + k, buf) |> List.append [ CountKey, torch.tensor (step + 1L) ]
                updates, State.ofSeq newState)

    /// Adam's moment estimation as torch.optim.Adam computes it, without the learning rate:
    /// <c>m = b1 m + (1 - b1) g</c>, <c>v = b2 v + (1 - b2) g²</c>, update
    /// <c>m / (1 - b1^t) / (sqrt v / sqrt(1 - b2^t) + eps)</c>. Keeps <c>mu/</c>, <c>nu/</c> and the count.
    let scaleByAdam (beta1: float) (beta2: float) (eps: float) : GradientTransformation =
        unitInterval "beta1" beta1
        unitInterval "beta2" beta2
        nonNegative "eps" eps
        transformation
            (fun ps -> State.ofSeq (Seq.concat [ seq [ CountKey, torch.tensor 0L ]; zerosUnder "mu" ps; zerosUnder "nu" ps ]))
            (fun grads state _ ->
                let step = stepOf state + 1L
                let correction1 = 1.0 - Math.Pow(beta1, float step)
                let correction2 = Math.Sqrt(1.0 - Math.Pow(beta2, float step))
                let mus = perParam "mu" state grads
                let nus = perParam "nu" state grads |> List.map (fun (_, _, v) -> v)
                let entries = ResizeArray [ CountKey, torch.tensor step ]
                let updates =
                    List.map2
                        (fun (k, g: torch.Tensor, m: torch.Tensor) (v: torch.Tensor) ->
                            // In-place steps only ever touch tensors just created here, never inputs.
                            let m = m.mul(beta1.ToScalar()).add_ (g, alpha = (1.0 - beta1).ToScalar())
                            let v = v.mul(beta2.ToScalar()).addcmul_ (g, g, value = (1.0 - beta2).ToScalar())
                            let denom = v.sqrt().div_(correction2.ToScalar()).add_ (eps.ToScalar())
                            entries.Add("mu/" + k, m)
                            entries.Add("nu/" + k, v)
                            k, m.div(denom).div_ (correction1.ToScalar()))
                        mus nus
                updates |> State.ofSeq, State.ofSeq entries)

    /// RMSprop's normalisation as torch.optim.RMSprop computes it, without momentum or learning
    /// rate: <c>nu = alpha nu + (1 - alpha) g²</c>, update <c>g / (sqrt nu + eps)</c>; centered,
    /// <c>mu = alpha mu + (1 - alpha) g</c> and update <c>g / (sqrt(nu - mu²) + eps)</c>.
    let scaleByRms (alpha: float) (eps: float) (centered: bool) : GradientTransformation =
        checkRange "alpha" alpha (alpha >= 0.0 && alpha <= 1.0) "it must lie in [0, 1]"
        nonNegative "eps" eps
        transformation
            (fun ps -> State.ofSeq (Seq.append (zerosUnder "nu" ps) (if centered then zerosUnder "mu" ps else Seq.empty)))
            (fun grads state _ ->
                let nus = perParam "nu" state grads
                let mus = if centered then perParam "mu" state grads |> List.map (fun (_, _, m) -> Some m) else nus |> List.map (fun _ -> None)
                let entries = ResizeArray()
                let updates =
                    List.map2
                        (fun (k, g: torch.Tensor, nu: torch.Tensor) (mu: torch.Tensor option) ->
                            let nu = nu.mul(alpha.ToScalar()).addcmul (g, g, value = (1.0 - alpha).ToScalar())
                            entries.Add("nu/" + k, nu)
                            let avg =
                                match mu with
                                | Some mu ->
                                    let mu = mu.mul(alpha.ToScalar()).add (g, alpha = (1.0 - alpha).ToScalar())
                                    entries.Add("mu/" + k, mu)
                                    nu.addcmul(mu, mu, value = (-1.0).ToScalar()).sqrt().add (eps.ToScalar())
                                | None -> nu.sqrt().add (eps.ToScalar())
                            k, g.div avg)
                        nus mus
                State.ofSeq updates, State.ofSeq entries)

    // -------------------------------------------------------------------------------------
    // Fused steps: one pass over each parameter's memory

    /// The smallest normal number of a dtype when clamping the second moment to it before the
    /// square root cannot change the denominator: the square root of a zero or subnormal second
    /// moment (dead ReLU units have exactly zero ones) takes a slow path in libtorch (about 6x and
    /// 25x slower here) and microcode assists in SIMD loops. The clamp is exact when the added eps
    /// dwarfs that number's square root (1e-19 in float32); with eps 0, or in float16, there is
    /// no clamp.
    let private sqrtFloor (dtype: torch.ScalarType) (addedEps: float) : float voption =
        let tiny, precision =
            match dtype with
            | torch.ScalarType.Float32 -> 1.1754943508222875e-38, 1.1920928955078125e-07
            | torch.ScalarType.BFloat16 -> 1.1754943508222875e-38, 0.0078125
            | torch.ScalarType.Float64 -> 2.2250738585072014e-308, 2.220446049250313e-16
            | _ -> nan, nan
        if addedEps > 4.0 * sqrt tiny / precision then ValueSome tiny else ValueNone

    /// The smallest normal float32 and float64 numbers.
    let private tiny32, tiny64 = 1.1754943508222875e-38, 2.2250738585072014e-308

    /// The magnitude below which a SIMD loop stores a value that decays by <paramref name="decay"/>
    /// each step as zero: its next decay would make it subnormal (see Kernels.flushV).
    let private flushBelow (tiny: float) (decay: float) : float = if decay > 0.0 && decay < 1.0 then tiny / decay else tiny

    /// The floor a SIMD loop clamps with: sqrtFloor's, or minus infinity for none.
    let private floorFor (dtype: torch.ScalarType) (addedEps: float) : float =
        match sqrtFloor dtype addedEps with
        | ValueSome tiny -> tiny
        | ValueNone -> Double.NegativeInfinity

    /// One parameter of a fused step: its key, gradient and value, and its optimizer-state
    /// tensors (one per prefix of the transformation's state, in the order of the prefixes), with
    /// what gather found out about them, each asked of libtorch once: the parameter's and the
    /// gradient's dtypes (the moments have the gradient's), and whether the SIMD loops can run
    /// on them (Direct: contiguous CPU tensors, all of the parameter's dtype, float32 or float64).
    [<Struct; NoEquality; NoComparison>]
    type private Slot =
        { Key: string; Grad: torch.Tensor; Param: torch.Tensor; Moments: torch.Tensor[]
          ParamType: torch.ScalarType; GradType: torch.ScalarType; Direct: bool }

    /// The parameters of a fused step with their optimizer-state entries under each prefix,
    /// checked as perParam checks them: each gradient has a parameter and, under each prefix, an
    /// entry of its shape and dtype; and the state holds nothing more under the prefixes.
    /// The optimizer-state keys of a step's parameter keys under each prefix, kept for the
    /// parameters the last step saw (slot i: the key and its state key under each prefix), so
    /// that the next step concatenates no strings. A slot is replaced whole, never changed, so
    /// steps on several threads at once at worst compute a key again.
    type private KeyCache = (string * string[])[] ref

    /// The state keys of the parameter key at position i of a step over count parameters.
    let private prefixedKeys (cache: KeyCache) (prefixes: string[]) (count: int) (i: int) (key: string) : string[] =
        let slots = cache.Value
        let cached = if slots.Length = count then slots.[i] else Unchecked.defaultof<_>
        if not (isNull (box cached)) && String.Equals(fst cached, key) then snd cached
        else
            let slots = if slots.Length = count then slots else Array.zeroCreate count
            let prefixed = prefixes |> Array.map (fun prefix -> prefix + "/" + key)
            slots.[i] <- (key, prefixed)
            cache.Value <- slots
            prefixed

    /// The slots a fused step gathered from each optimizer state object, while that object lives
    /// (weakly keyed: the cache never keeps a state's tensors alive longer than the state). An
    /// optimizer that updated in place hands the same state object to its next step, whose
    /// moments are then the same tensors: found again without a lookup by key.
    type private Gathered = System.Runtime.CompilerServices.ConditionalWeakTable<State, Slot[]>

    let private gather (cache: KeyCache) (gathered: Gathered) (prefixes: string[]) (input: FusedStepInput) : Slot[] =
        let state = input.OptState
        let entries = state.Entries
        let count = input.Grads.Count
        let slots = Array.zeroCreate count
        let last =
            match gathered.TryGetValue state with
            | true, s when s.Length = count -> s
            | _ -> null
        // The gradients and the parameters come keyed alike (from one gradient): paired as they
        // are enumerated, a parameter needs no lookup by key.
        use parameters = (input.Params.Entries :> seq<_>).GetEnumerator()
        let mutable i = 0
        for KeyValue(k, g) in input.Grads.Entries do
            let p =
                if parameters.MoveNext() && String.Equals(parameters.Current.Key, k) then
                    let p = parameters.Current.Value
                    if not (Shape.same p g) then paramFor input.Params k g else p
                else paramFor input.Params k g
            let gradType = g.dtype
            let paramType = p.dtype
            // The loops read every tensor of the slot through a span of the parameter's dtype: all
            // of it on the CPU and contiguous (the moments' dtype is the gradient's, checked below).
            let simd = paramType = torch.float32 || paramType = torch.float64
            let mutable direct =
                simd && gradType = paramType && g.NumberOfElements * (if paramType = torch.float32 then 4L else 8L) <= int64 Int32.MaxValue
                && Kernels.isDirectOfType p && Kernels.isDirectOfType g
            let known = if isNull last then Unchecked.defaultof<Slot> else last.[i]
            let moments =
                // The same state object and key as the last step: its moments, checked against this
                // gradient's dtype when it was gathered, still hold as many elements.
                if not (isNull last) && String.Equals(known.Key, k) && known.GradType = gradType
                   && known.Moments |> Array.forall (fun m -> not m.IsInvalid && m.NumberOfElements = g.NumberOfElements) then
                    for m in known.Moments do
                        direct <- direct && Kernels.isDirectOfType m
                    known.Moments
                else
                    let moments = Array.zeroCreate prefixes.Length
                    let keys = prefixedKeys cache prefixes count i k
                    for j in 0 .. prefixes.Length - 1 do
                        match entries.TryGetValue keys.[j] with
                        | true, m when m.dtype = gradType && Shape.same m g ->
                            moments.[j] <- m
                            direct <- direct && Kernels.isDirectOfType m
                        | _ ->
                            // Missing or mismatched: perParam raises the error that names it.
                            perParam prefixes.[j] state input.Grads |> ignore
                            raise (InvalidOperationException(sprintf "Optimizer state entry '%s/%s' could not be read." prefixes.[j] k))
                    moments
            slots.[i] <- { Key = k; Grad = g; Param = p; Moments = moments; ParamType = paramType; GradType = gradType; Direct = direct }
            i <- i + 1
        if isNull last then
            let scalars = (if entries.ContainsKey CountKey then 1 else 0) + (if entries.ContainsKey LearningRateKey then 1 else 0)
            if state.Count <> scalars + prefixes.Length * slots.Length then
                // More entries than the parameters need: perParam names one that no gradient has.
                for prefix in prefixes do
                    perParam prefix state input.Grads |> ignore
            // Only what the next step reuses: not this step's gradients and parameters.
            gathered.AddOrUpdate(state, slots |> Array.map (fun s -> { s with Grad = null; Param = null }))
        slots

    /// True when the step may write a parameter's new values into its own tensors: the caller
    /// handed over the parameter and all its state tensors, which are distinct and of its dtype.
    /// Never float16 or bfloat16: libtorch rounds some of their in-place ops (mul_ with a Scalar)
    /// unlike the out-of-place forms, and donating must give the same bits as not donating.
    let private writableInPlace (input: FusedStepInput) (slot: Slot) : bool =
        let p = slot.Param
        let dtype = slot.ParamType
        // The moments have the gradient's dtype (gather checked it).
        let mutable ok = slot.GradType = dtype && dtype <> torch.float16 && dtype <> torch.bfloat16 && input.MayOverwrite p
        for j in 0 .. slot.Moments.Length - 1 do
            let m = slot.Moments.[j]
            ok <- ok && not (obj.ReferenceEquals(m, p)) && input.MayOverwrite m
            for i in 0 .. j - 1 do
                ok <- ok && not (obj.ReferenceEquals(m, slot.Moments.[i]))
        ok

    /// The step count's and learning rate's next entries: written into the caller's tensors when
    /// it handed them over (directly into the memory of a CPU scalar), else new tensors.
    let private scalarEntry (input: FusedStepInput) (key: string) (value: float) (dtype: torch.ScalarType) : torch.Tensor =
        match input.OptState.Entries.TryGetValue key with
        | true, t when t.dtype = dtype && t.NumberOfElements = 1L && input.MayOverwrite t ->
            if dtype = torch.int64 && Kernels.isDirect torch.int64 t then (Kernels.span<int64> t).[0] <- int64 value
            elif dtype = torch.float64 && Kernels.isDirect torch.float64 t then (Kernels.span<float> t).[0] <- value
            else
                use s = value.ToScalar()
                t.fill_ s |> ignore
            t
        | _ -> torch.tensor (value, dtype = dtype)

    /// The count, the learning rate of this step (checked finite) and the next count.
    let private stepAndRate (schedule: Schedule) (input: FusedStepInput) : int64 * float =
        let count = stepOf input.OptState
        let lr = schedule count
        if Double.IsNaN lr || Double.IsInfinity lr then
            raise (InvalidOperationException(sprintf "The learning-rate schedule returned %g at step %d; it must be finite." lr count))
        count, lr

    /// The new parameters and optimizer state of a fused step from each slot's new tensors
    /// (parameter first, then one per prefix), with the next step count and this step's learning
    /// rate (scalarEntry), and the gradients' sum of squares when the loops computed it. When
    /// every slot was updated in place and the scalars too, the given states themselves come
    /// back: nothing changed but their tensors' values.
    let private assemble
        (input: FusedStepInput) (prefixes: string[]) (slots: Slot[]) (results: torch.Tensor[][]) (nextCount: int64) (lr: float) (gradSumOfSquares: float voption)
        : FusedStepResult =
        let count = scalarEntry input CountKey (float nextCount) torch.int64
        let lr = scalarEntry input LearningRateKey lr torch.float64
        let entries = input.OptState.Entries
        let sameTensor (key: string) (t: torch.Tensor) =
            match entries.TryGetValue key with
            | true, old -> obj.ReferenceEquals(old, t)
            | _ -> false
        let mutable allInPlace = sameTensor CountKey count && sameTensor LearningRateKey lr
        for i in 0 .. slots.Length - 1 do
            allInPlace <- allInPlace && obj.ReferenceEquals(results.[i].[0], slots.[i].Param)
        if allInPlace && input.OptState.Count = 2 + prefixes.Length * slots.Length then
            { Params = input.Params; OptState = input.OptState; GradSumOfSquares = gradSumOfSquares }
        else
            let mutable parameters = input.Params.Entries
            let mutable state = Map.empty.Add(CountKey, count).Add(LearningRateKey, lr)
            for i in 0 .. slots.Length - 1 do
                let r = results.[i]
                if not (obj.ReferenceEquals(r.[0], slots.[i].Param)) then parameters <- parameters.Add(slots.[i].Key, r.[0])
                for j in 0 .. prefixes.Length - 1 do
                    state <- state.Add(prefixes.[j] + "/" + slots.[i].Key, r.[j + 1])
            { Params = State parameters; OptState = State state; GradSumOfSquares = gradSumOfSquares }

    /// The whole step through the unfused transformation (its Update, then applyUpdates), for
    /// parameters the SIMD loops cannot read; it computes no sum of squares.
    let private unfusedStep (fallback: GradientTransformation) (input: FusedStepInput) : FusedStepResult =
        let grads = if input.GradScale = 1.0 then input.Grads else mapGrads (fun _ g -> g.mul (input.GradScale.ToScalar())) input.Grads
        let updates, next = fallback.Update grads input.OptState input.Params
        { Params = applyUpdates input.Params updates; OptState = next; GradSumOfSquares = ValueNone }

    /// New tensors like a slot's parameter and state tensors, for a step that may not write into them.
    let private freshLike (slot: Slot) : torch.Tensor[] =
        Array.append [| torch.empty_like slot.Param |] (slot.Moments |> Array.map (fun m -> torch.empty_like m))

    /// The slot's own tensors (parameter first), for a step that writes in place.
    let private own (slot: Slot) : torch.Tensor[] = Array.append [| slot.Param |] slot.Moments

    let private adamPrefixes = [| "mu"; "nu" |]

    /// Adam's step fused, with torch.optim's update rule: the moments, then
    /// <c>param (1 - lr wd) - lr/(1 - b1^t) m / (sqrt v / sqrt(1 - b2^t) + eps)</c>, computed as
    /// <c>lr sqrt(1 - b2^t)/(1 - b1^t) m / (sqrt v + eps sqrt(1 - b2^t))</c>: the same value up to
    /// rounding, and folding the correction into eps and the step frees the pass that the clamp
    /// before the square root (sqrtFloor) takes. <paramref name="l2"/> adds <c>l2 * param</c> to
    /// the gradient first (Adam's weight decay); <paramref name="decoupled"/> is AdamW's decay.
    /// A contiguous float32 or float64 CPU parameter is updated in one SIMD pass (Kernels.adam);
    /// others by libtorch ops, one addcdiv per parameter. Where the caller hands over a parameter
    /// and both its moments, the step writes into them. It reports the gradients' sum of squares
    /// when every parameter took the SIMD pass.
    let private fusedAdam (options: AdamOptions) (l2: float) (decoupled: float) : FusedStepInput -> FusedStepResult =
        let cache: KeyCache = ref [||]
        let gathered = Gathered()
        fun input ->
            let count, lr = stepAndRate options.LearningRate input
            let step = count + 1L
            let correction1 = 1.0 - Math.Pow(options.Beta1, float step)
            let correction2 = Math.Sqrt(1.0 - Math.Pow(options.Beta2, float step))
            let eps = options.Eps * correction2
            let stepSize = -lr * correction2 / correction1
            let decay = 1.0 - lr * decoupled
            let scale = input.GradScale
            let slots = gather cache gathered adamPrefixes input
            let constants32: AdamStep<float32> =
                { GradScale = float32 scale; L2 = float32 l2; HasL2 = l2 <> 0.0; Beta1 = float32 options.Beta1; Keep1 = float32 (1.0 - options.Beta1)
                  Beta2 = float32 options.Beta2; Keep2 = float32 (1.0 - options.Beta2); Floor = float32 (floorFor torch.float32 eps); Eps = float32 eps
                  Decay = float32 decay; StepSize = float32 stepSize; FlushM = float32 (flushBelow tiny32 options.Beta1)
                  FlushV = float32 (flushBelow tiny32 options.Beta2); FlushP = float32 (flushBelow tiny32 decay) }
            let constants64: AdamStep<float> =
                { GradScale = scale; L2 = l2; HasL2 = l2 <> 0.0; Beta1 = options.Beta1; Keep1 = 1.0 - options.Beta1
                  Beta2 = options.Beta2; Keep2 = 1.0 - options.Beta2; Floor = floorFor torch.float64 eps; Eps = eps
                  Decay = decay; StepSize = stepSize; FlushM = flushBelow tiny64 options.Beta1; FlushV = flushBelow tiny64 options.Beta2
                  FlushP = flushBelow tiny64 decay }
            let results: torch.Tensor[][] = Array.zeroCreate slots.Length
            // The loops' sums of squares, added up in the slots' order; not computed once a slot
            // takes libtorch ops.
            let mutable sumOfSquares = 0.0
            let mutable computed = true
            for i in 0 .. slots.Length - 1 do
                let slot = slots.[i]
                let inPlace = writableInPlace input slot
                if slot.Direct then
                    let out = if inPlace then own slot else freshLike slot
                    let p, g, m, v = slot.Param, slot.Grad, slot.Moments.[0], slot.Moments.[1]
                    // In place the outputs are the inputs: one span each.
                    let squares =
                        if slot.ParamType = torch.float32 then
                            let ps = Kernels.span<float32> p
                            let ms = Kernels.span<float32> m
                            let vs = Kernels.span<float32> v
                            if inPlace then Kernels.adam32 (constants32, ps, Kernels.span g, ms, vs, ps, ms, vs)
                            else Kernels.adam32 (constants32, ps, Kernels.span g, ms, vs, Kernels.span out.[0], Kernels.span out.[1], Kernels.span out.[2])
                        else
                            let ps = Kernels.span<float> p
                            let ms = Kernels.span<float> m
                            let vs = Kernels.span<float> v
                            if inPlace then Kernels.adam64 (constants64, ps, Kernels.span g, ms, vs, ps, ms, vs)
                            else Kernels.adam64 (constants64, ps, Kernels.span g, ms, vs, Kernels.span out.[0], Kernels.span out.[1], Kernels.span out.[2])
                    sumOfSquares <- sumOfSquares + squares
                    results.[i] <- out
                else
                    computed <- false
                    let p, m, v = slot.Param, slot.Moments.[0], slot.Moments.[1]
                    use beta1 = options.Beta1.ToScalar()
                    use keep1 = (1.0 - options.Beta1).ToScalar()
                    use beta2 = options.Beta2.ToScalar()
                    use keep2 = (1.0 - options.Beta2).ToScalar()
                    use epsScalar = eps.ToScalar()
                    use stepScalar = stepSize.ToScalar()
                    let g = if scale = 1.0 then slot.Grad else slot.Grad.mul (scale.ToScalar())
                    let g = if l2 = 0.0 then g else g.add (p, alpha = l2.ToScalar())
                    let m = (if inPlace then m.mul_ beta1 else m.mul beta1).add_ (g, alpha = keep1)
                    let v = (if inPlace then v.mul_ beta2 else v.mul beta2).addcmul_ (g, g, value = keep2)
                    let root =
                        match sqrtFloor v.dtype eps with
                        | ValueSome floor -> v.clamp_min(floor.ToScalar()).sqrt_ ()
                        | ValueNone -> v.sqrt ()
                    let denom = root.add_ epsScalar
                    let updated =
                        if inPlace then
                            (if decoupled = 0.0 then p else p.mul_ (decay.ToScalar())).addcdiv_ (m, denom, value = stepScalar)
                        else
                            let decayed = if decoupled = 0.0 then p else p.mul (decay.ToScalar())
                            let updated = decayed.addcdiv (m, denom, value = stepScalar)
                            if updated.dtype = p.dtype then updated else updated.to_type p.dtype
                    results.[i] <- [| updated; m; v |]
            assemble input adamPrefixes slots results step lr (if computed then ValueSome sumOfSquares else ValueNone)

    /// SGD's step fused (torch.optim.SGD's rule): L2 penalty, momentum with dampening and
    /// Nesterov, <c>param - lr d</c>, in one SIMD pass per contiguous float32 or float64 CPU
    /// parameter (Kernels.sgd), which also sums the gradients' squares. When a parameter is
    /// elsewhere, the whole step runs through <paramref name="fallback"/>'s Update and
    /// applyUpdates and reports no sum of squares.
    let private fusedSgd (options: SgdOptions) (fallback: GradientTransformation) : FusedStepInput -> FusedStepResult =
        let hasMomentum = options.Momentum <> 0.0
        let prefixes = if hasMomentum then [| "trace" |] else [||]
        let cache: KeyCache = ref [||]
        let gathered = Gathered()
        fun input ->
            let count, lr = stepAndRate options.LearningRate input
            let slots = gather cache gathered prefixes input
            if not (slots |> Array.forall (fun s -> s.Direct)) then unfusedStep fallback input
            else
                let scale = input.GradScale
                let wd = options.WeightDecay
                let c32: SgdStep<float32> =
                    { GradScale = float32 scale; L2 = float32 wd; HasL2 = wd <> 0.0; HasMomentum = hasMomentum; First = (count = 0L)
                      Momentum = float32 options.Momentum; Keep = float32 (1.0 - options.Dampening); Nesterov = options.Nesterov; NegLr = float32 -lr
                      FlushBuf = float32 (flushBelow tiny32 options.Momentum) }
                let c64: SgdStep<float> =
                    { GradScale = scale; L2 = wd; HasL2 = wd <> 0.0; HasMomentum = hasMomentum; First = (count = 0L)
                      Momentum = options.Momentum; Keep = 1.0 - options.Dampening; Nesterov = options.Nesterov; NegLr = -lr
                      FlushBuf = flushBelow tiny64 options.Momentum }
                let results: torch.Tensor[][] = Array.zeroCreate slots.Length
                let mutable sumOfSquares = 0.0
                for i in 0 .. slots.Length - 1 do
                    let slot = slots.[i]
                    let out = if writableInPlace input slot then own slot else freshLike slot
                    let p, g = slot.Param, slot.Grad
                    let buf, bufOut = (if hasMomentum then slot.Moments.[0], out.[1] else null, null)
                    let squares =
                        if p.dtype = torch.float32 then
                            Kernels.sgd32 (c32, Kernels.span p, Kernels.span g, Kernels.spanOrEmpty buf, Kernels.span out.[0], Kernels.spanOrEmpty bufOut)
                        else
                            Kernels.sgd64 (c64, Kernels.span p, Kernels.span g, Kernels.spanOrEmpty buf, Kernels.span out.[0], Kernels.spanOrEmpty bufOut)
                    sumOfSquares <- sumOfSquares + squares
                    results.[i] <- out
                assemble input prefixes slots results (count + 1L) lr (ValueSome sumOfSquares)

    /// RMSprop's step fused (torch.optim.RMSprop's rule): L2 penalty, the running average of
    /// squared gradients, centering, momentum, in one SIMD pass per contiguous float32 or float64
    /// CPU parameter (Kernels.rms), which also sums the gradients' squares. When a parameter is
    /// elsewhere, the whole step runs through <paramref name="fallback"/>'s Update and
    /// applyUpdates and reports no sum of squares.
    let private fusedRms (options: RmsPropOptions) (fallback: GradientTransformation) : FusedStepInput -> FusedStepResult =
        let hasMomentum = options.Momentum > 0.0
        let prefixes =
            [| yield "nu"
               if options.Centered then yield "mu"
               if hasMomentum then yield "trace" |]
        let muAt, traceAt = (if options.Centered then 2 else -1), (if hasMomentum then prefixes.Length else -1)
        let cache: KeyCache = ref [||]
        let gathered = Gathered()
        fun input ->
            let count, lr = stepAndRate options.LearningRate input
            let slots = gather cache gathered prefixes input
            if not (slots |> Array.forall (fun s -> s.Direct)) then unfusedStep fallback input
            else
                let scale = input.GradScale
                let wd = options.WeightDecay
                let c32: RmsStep<float32> =
                    { GradScale = float32 scale; L2 = float32 wd; HasL2 = wd <> 0.0; Alpha = float32 options.Alpha; Keep = float32 (1.0 - options.Alpha)
                      Centered = options.Centered; Floor = float32 (if options.Centered then Double.NegativeInfinity else floorFor torch.float32 options.Eps)
                      Eps = float32 options.Eps; HasMomentum = hasMomentum; First = (count = 0L); Momentum = float32 options.Momentum; NegLr = float32 -lr
                      FlushNu = float32 (flushBelow tiny32 options.Alpha); FlushMu = float32 (flushBelow tiny32 options.Alpha)
                      FlushBuf = float32 (flushBelow tiny32 options.Momentum) }
                let c64: RmsStep<float> =
                    { GradScale = scale; L2 = wd; HasL2 = wd <> 0.0; Alpha = options.Alpha; Keep = 1.0 - options.Alpha
                      Centered = options.Centered; Floor = (if options.Centered then Double.NegativeInfinity else floorFor torch.float64 options.Eps)
                      Eps = options.Eps; HasMomentum = hasMomentum; First = (count = 0L); Momentum = options.Momentum; NegLr = -lr
                      FlushNu = flushBelow tiny64 options.Alpha; FlushMu = flushBelow tiny64 options.Alpha; FlushBuf = flushBelow tiny64 options.Momentum }
                let results: torch.Tensor[][] = Array.zeroCreate slots.Length
                let mutable sumOfSquares = 0.0
                for i in 0 .. slots.Length - 1 do
                    let slot = slots.[i]
                    let out = if writableInPlace input slot then own slot else freshLike slot
                    let p, g = slot.Param, slot.Grad
                    let mu, muOut = (if muAt > 0 then slot.Moments.[muAt - 1], out.[muAt] else null, null)
                    let buf, bufOut = (if traceAt > 0 then slot.Moments.[traceAt - 1], out.[traceAt] else null, null)
                    let nu, nuOut = slot.Moments.[0], out.[1]
                    let squares =
                        if p.dtype = torch.float32 then
                            Kernels.rms32 (c32, Kernels.span p, Kernels.span g, Kernels.span nu, Kernels.spanOrEmpty mu, Kernels.spanOrEmpty buf,
                                         Kernels.span out.[0], Kernels.span nuOut, Kernels.spanOrEmpty muOut, Kernels.spanOrEmpty bufOut)
                        else
                            Kernels.rms64 (c64, Kernels.span p, Kernels.span g, Kernels.span nu, Kernels.spanOrEmpty mu, Kernels.spanOrEmpty buf,
                                         Kernels.span out.[0], Kernels.span nuOut, Kernels.spanOrEmpty muOut, Kernels.spanOrEmpty bufOut)
                    sumOfSquares <- sumOfSquares + squares
                    results.[i] <- out
                assemble input prefixes slots results (count + 1L) lr (ValueSome sumOfSquares)

    // -------------------------------------------------------------------------------------
    // Optimizers

    let private chainOf (parts: GradientTransformation option list) = parts |> List.choose id |> chain

    let private when' (condition: bool) (t: unit -> GradientTransformation) = if condition then Some(t ()) else None

    /// SGD as torch.optim.SGD: L2 weight decay, momentum with dampening, optional Nesterov.
    let sgdWith (options: SgdOptions) : GradientTransformation =
        nonNegative "WeightDecay" options.WeightDecay
        nonNegative "Momentum" options.Momentum
        if options.Nesterov && (options.Momentum <= 0.0 || options.Dampening <> 0.0) then
            raise (ArgumentException(sprintf "Nesterov momentum needs Momentum > 0 and Dampening 0; got Momentum %g, Dampening %g." options.Momentum options.Dampening, "options"))
        let unfused =
            chainOf [
                when' (options.WeightDecay <> 0.0) (fun () -> addDecayedWeights options.WeightDecay)
                when' (options.Momentum <> 0.0) (fun () -> trace options.Momentum options.Dampening options.Nesterov)
                Some(scaleByLearningRate options.LearningRate)
            ]
        unfused |> withApply (fusedSgd options unfused)

    /// Plain SGD with a constant learning rate.
    let sgd (learningRate: float) : GradientTransformation =
        nonNegative "learningRate" learningRate
        sgdWith { SgdOptions.Default with LearningRate = Schedule.constant learningRate }

    /// Adam as torch.optim.Adam: WeightDecay is an L2 penalty added to the gradient.
    let adamWith (options: AdamOptions) : GradientTransformation =
        nonNegative "WeightDecay" options.WeightDecay
        chainOf [
            when' (options.WeightDecay <> 0.0) (fun () -> addDecayedWeights options.WeightDecay)
            Some(scaleByAdam options.Beta1 options.Beta2 options.Eps)
            Some(scaleByLearningRate options.LearningRate)
        ]
        |> withApply (fusedAdam options options.WeightDecay 0.0)

    /// Adam with a constant learning rate and torch's defaults.
    let adam (learningRate: float) : GradientTransformation =
        nonNegative "learningRate" learningRate
        adamWith { AdamOptions.Default with LearningRate = Schedule.constant learningRate }

    /// AdamW as torch.optim.AdamW: decoupled weight decay, <c>param -= lr * WeightDecay * param</c>.
    let adamwWith (options: AdamOptions) : GradientTransformation =
        nonNegative "WeightDecay" options.WeightDecay
        chainOf [
            Some(scaleByAdam options.Beta1 options.Beta2 options.Eps)
            when' (options.WeightDecay <> 0.0) (fun () -> addDecayedWeights options.WeightDecay)
            Some(scaleByLearningRate options.LearningRate)
        ]
        |> withApply (fusedAdam options 0.0 options.WeightDecay)

    /// AdamW with a constant learning rate and weight decay 0.01 (PyTorch's defaults).
    let adamw (learningRate: float) : GradientTransformation =
        nonNegative "learningRate" learningRate
        adamwWith { AdamOptions.DefaultW with LearningRate = Schedule.constant learningRate }

    /// RMSprop as torch.optim.RMSprop: L2 weight decay, optional centering and momentum.
    let rmspropWith (options: RmsPropOptions) : GradientTransformation =
        nonNegative "WeightDecay" options.WeightDecay
        nonNegative "Momentum" options.Momentum
        let unfused =
            chainOf [
                when' (options.WeightDecay <> 0.0) (fun () -> addDecayedWeights options.WeightDecay)
                Some(scaleByRms options.Alpha options.Eps options.Centered)
                when' (options.Momentum > 0.0) (fun () -> trace options.Momentum 0.0 false)
                Some(scaleByLearningRate options.LearningRate)
            ]
        unfused |> withApply (fusedRms options unfused)

    /// RMSprop with a constant learning rate and torch's defaults.
    let rmsprop (learningRate: float) : GradientTransformation =
        nonNegative "learningRate" learningRate
        rmspropWith { RmsPropOptions.Default with LearningRate = Schedule.constant learningRate }
