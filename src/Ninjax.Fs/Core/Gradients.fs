namespace Ninjax

open System
open System.Collections.Generic
open System.Text.RegularExpressions
open TorchSharp

/// Something that owns the keys at and under a path: a module.
[<AllowNullLiteral>]
type IScoped =
    /// The path of the owner, such as <c>model/h1</c>.
    abstract Path: string

/// What to differentiate with respect to.
[<RequireQualifiedAccess>]
type Target =
    /// A key and every key under it, as in ninjax (<c>model/h1</c> selects <c>model/h1/w</c> and <c>model/h1/b</c>).
    | Key of string
    /// Every key the regex matches (anchor it with <c>^...$</c> to match whole keys).
    | Pattern of Regex
    /// The trainable parameters of a module: its floating-point entries, without the buffers
    /// (running statistics) and optimizer state it or its submodules declare (see EntryKind).
    | Module of IScoped

    /// A readable description for error messages.
    override this.ToString() =
        match this with
        | Key k -> sprintf "key '%s'" k
        | Pattern r -> sprintf "pattern /%O/" r
        | Module m -> sprintf "module '%s'" m.Path

/// The outcome of differentiating a program.
type Gradient<'Aux> =
    {
        /// The value of the loss (detached unless a gradient encloses this one).
        Loss: torch.Tensor
        /// The state entries differentiated with respect to, as the function left them (a write the
        /// function made to a target is seen here).
        Params: State
        /// The gradients, keyed like Params.
        Grads: State
        /// The gradients with respect to the explicit tensor inputs, in order.
        InputGrads: torch.Tensor list
        /// What the function returned beside the loss.
        Aux: 'Aux
    }
/// Differentiation of programs with respect to state entries and explicit inputs.
module internal Gradients =

    /// The keys a target selects in a state; an error naming the target when it selects none.
    let internal resolveTarget (state: State) (target: Target) : string list =
        let keys =
            match target with
            | Target.Key k -> state.KeysUnder k |> List.ofSeq
            // The module's trainable parameters: not its buffers, optimizer state or integer entries.
            | Target.Module m -> Parameters.targetKeys state m.Path (Declarations.Of m) |> List.ofArray
            | Target.Pattern r -> state.Entries |> Seq.map (fun kv -> kv.Key) |> Seq.filter r.IsMatch |> List.ofSeq
        if keys.IsEmpty then
            let probe =
                match target with
                | Target.Key k -> k
                | Target.Module m -> m.Path
                | Target.Pattern r -> string r
            let near = State.nearby probe state
            raise (
                KeyNotFoundException(
                    sprintf
                        "Gradient target %O matches no state key (nearby existing keys: %s)."
                        target (if near.IsEmpty then "none, the state is empty" else String.Join(", ", near))
                )
            )
        keys

    /// The gradients of a scalar loss with respect to leaves (null where the loss does not depend
    /// on one), through loss.backward: libtorch's errors in the backward pass (a tensor autograd
    /// saved was changed in place, ...) then arrive as exceptions, where torch.autograd.grad in
    /// TorchSharp 0.107 ends the process. Each leaf must be a tensor only this gradient uses (a
    /// fresh leaf or alias): its .grad receives the gradient and is cleared again. With keepGraph
    /// the gradients keep their graph (a gradient encloses this one).
    let internal backward (loss: torch.Tensor) (leaves: torch.Tensor[]) (keepGraph: bool) : torch.Tensor[] =
        torch.autograd.backward([| loss |], null, Nullable keepGraph, keepGraph, leaves)
        leaves
        |> Array.map (fun leaf ->
            let g = leaf.grad
            // The gradient of a kept graph refers back to the leaf: clear it to break the cycle.
            if keepGraph && not (isNull (box g)) then leaf.grad <- null
            if isNull (box g) || g.IsInvalid then null else g)

    /// The error for a backward pass that failed: what the call's own code raised inside it
    /// (Nj.checkpoint's recomputation), or libtorch's error with the state entry it concerns.
    let internal backwardFailed (env: Env) (failuresBefore: int) (readsBefore: int) (e: exn) : exn =
        let failures = if isNull env.Log then [] else env.Log.BackwardFailures |> Seq.skip failuresBefore |> List.ofSeq
        match failures with
        | first :: _ ->
            InvalidOperationException(
                sprintf "The gradient in %s failed: Nj.checkpoint's function raised while the backward pass recomputed it: %s" env.Name first.Message,
                first
            )
            :> exn
        | [] ->
            let detail = (e.Message.Split '\n').[0]
            let changed = if isNull env.Log then [] else env.Log.ChangedSinceRead readsBefore |> List.map fst
            let cause =
                match changed with
                | key :: _ ->
                    sprintf " The state entry '%s' was changed in place (an operation ending in _, such as mul_, add_ or copy_) after the loss used it: compute a new tensor instead (mul instead of mul_)." key
                | [] when detail.Contains "inplace" ->
                    " A tensor the loss computed was changed in place (an operation ending in _, such as mul_, add_ or copy_) after autograd saved it for the backward pass: compute a new tensor instead (mul instead of mul_)."
                | [] -> ""
            InvalidOperationException(sprintf "The gradient in %s failed in libtorch's backward pass: %s%s" env.Name detail cause, e) :> exn

    /// gradFull in an abstract init (Nj.initShapes): the program runs once, without a graph, to
    /// create its entries, and zeros of the targets' shapes stand in for the gradients.
    let private shapesOnly (f: torch.Tensor list -> Nj<torch.Tensor * 'Aux>) (targets: Target list) (inputs: torch.Tensor list) (env: Env) (world: World) : struct (Gradient<'Aux> * World) =
        use _noGrad = torch.no_grad ()
        let struct ((loss, aux), after) = Monad.runIn { env with GradDepth = env.GradDepth + 1 } world (f inputs)
        if isNull (box loss) then raise (InvalidOperationException "The differentiated function returned a null loss.")
        let keys = targets |> List.collect (resolveTarget after.State) |> List.distinct
        let entries = after.State.Entries
        let result =
            {
                Loss = loss
                Params = State.ofValidPairs (keys |> List.map (fun k -> k, entries.[k]))
                Grads = State.ofValidPairs (keys |> List.map (fun k -> k, torch.zeros_like entries.[k]))
                InputGrads = inputs |> List.map torch.zeros_like
                Aux = aux
            }
        struct (result, after)

    /// Differentiates a program's scalar loss with respect to state entries and explicit tensor
    /// inputs. When the program may create entries, it first runs once with ignore on so that
    /// entries it creates exist (ninjax's prerun). Writes the program makes are kept (a counter
    /// incremented inside the loss counts once per call) and detached from the graph unless a
    /// gradient encloses this one, in which case everything keeps its graph (grad of grad).
    let gradFull (f: torch.Tensor list -> Nj<torch.Tensor * 'Aux>) (targets: Target list) (inputs: torch.Tensor list) : Nj<Gradient<'Aux>> =
        Nj(fun env world ->
            if targets.IsEmpty && inputs.IsEmpty then
                raise (ArgumentException("Nothing to differentiate: give at least one target or input.", "targets"))
            if env.ShapesOnly then shapesOnly f targets inputs env world else
            use _grad = torch.enable_grad true
            let nested = env.GradDepth > 0
            let world =
                if env.Flags.Create then
                    let struct (_, w) = Monad.runIn { env with Flags = { env.Flags with Ignore = true } } world (f inputs)
                    w
                else world
            let declared = Declarations.Version
            let keys = targets |> List.collect (resolveTarget world.State) |> List.distinct |> Array.ofList
            let entries = world.State.Entries
            // Each target's tensor, looked up once: its leaf, the restore and the result share it.
            let originals = keys |> Array.map (fun k -> entries.[k])
            for i in 0 .. keys.Length - 1 do
                let t = originals.[i]
                if not (torch.is_floating_point t || torch.is_complex t) then
                    raise (
                        ArgumentException(
                            sprintf "Cannot differentiate with respect to state key '%s': its dtype %O is not floating point. Narrow the gradient targets to exclude it." keys.[i] t.dtype,
                            "targets"
                        )
                    )
            // Inside an enclosing gradient, a tensor on its graph gets a fresh alias as the leaf, so
            // that this gradient's .grad never lands on a tensor the enclosing one differentiates.
            let leafOf (t: torch.Tensor) = if nested && t.requires_grad then t.view_as t else t.detach().requires_grad_(true)
            let paramLeaves = originals |> Array.map leafOf
            let inputLeaves = inputs |> List.map leafOf
            let mutable leafState = entries
            for i in 0 .. keys.Length - 1 do
                leafState <- leafState.Add(keys.[i], paramLeaves.[i])
            let inner = { env with Flags = { env.Flags with Create = false }; GradDepth = env.GradDepth + 1 }
            let start = { world with State = State(leafState, world.State.Structure); Read = KeySet.empty; Modified = KeySet.empty; Replaced = KeySet.empty; Created = KeySet.empty }
            let failuresBefore = if isNull env.Log then 0 else env.Log.BackwardFailures.Count
            let readsBefore = if isNull env.Log then 0 else env.Log.ReadCount
            let struct ((loss, aux), after) = Monad.runIn inner start (f inputLeaves)
            // A module that declared a buffer while f ran (a Buffer call in the loss) has it left
            // out of its Target.Module, as if it had been declared before: the positions kept.
            let kept =
                if Declarations.Version = declared then Array.init keys.Length id
                else
                    let selected = targets |> List.collect (resolveTarget world.State) |> HashSet<string>
                    Array.init keys.Length id |> Array.filter (fun i -> selected.Contains keys.[i])
            let unread = kept |> Array.filter (fun i -> not (after.Read.Contains keys.[i])) |> Array.map (fun i -> keys.[i])
            if unread.Length > 0 then
                // A key the function did not read this time may still be one it reads on another
                // path: a branch of cond not taken (ninjax's grad counts what either branch
                // reads). Run it once more, discarded, with every branch explored; a key it reads
                // then gets a zero gradient, a key it never reads is an error.
                let explored =
                    try
                        use _noGrad = torch.no_grad ()
                        let explore = { inner with Flags = { Create = true; Modify = true; Ignore = true } }
                        let struct (_, w) = Monad.runIn explore start (f inputLeaves)
                        w.Read
                    with _ -> KeySet.empty
                for k in unread do
                    if not (explored.Contains k) then
                        raise (
                            InvalidOperationException(
                                sprintf
                                    "Gradient with respect to state key '%s' was asked for, but the differentiated function never reads it. Keys it reads: %s.%s"
                                    k (if after.Read.IsEmpty then "none" else String.Join(", ", after.Read))
                                    " If it is state rather than a trainable parameter (a moving average, say), declare it a buffer in its module's constructor (DeclareBuffers) and target the module: Target.Module leaves buffers out."
                            )
                        )
            if isNull (box loss) then raise (InvalidOperationException "The differentiated function returned a null loss.")
            if loss.numel () <> 1L then
                raise (
                    ArgumentException(
                        sprintf "The differentiated function must return a scalar loss; it returned shape %s (%d elements)." (Text.shape loss) (loss.numel ())
                    )
                )
            if not (torch.is_floating_point loss || torch.is_complex loss) then
                raise (
                    ArgumentException(
                        sprintf "The differentiated function must return a floating-point loss; it returned dtype %O. Convert it (loss.to_type(torch.float32)) or compute it from floating-point values." loss.dtype
                    )
                )
            let leaves = Array.append (kept |> Array.map (fun i -> paramLeaves.[i])) (Array.ofList inputLeaves)
            // A loss that does not depend on the targets (a constant, or computed from detached
            // values) has zero gradients, as in JAX and ninjax.
            let grads: torch.Tensor[] =
                if not loss.requires_grad then Array.zeroCreate leaves.Length
                else
                    try
                        backward loss leaves nested
                    with e ->
                        raise (backwardFailed env failuresBefore readsBefore e)
            let gradAt i =
                let g = grads.[i]
                if isNull (box g) || g.IsInvalid then torch.zeros_like leaves.[i] else g
            let inputGrads = inputLeaves |> List.mapi (fun i _ -> gradAt (kept.Length + i))
            // The state the function leaves: the caller's entries (every target as it was, never
            // its leaf) with what the function wrote or created, writes detached from the graph
            // unless a gradient encloses this one. A target written with its own leaf keeps its
            // tensor, as if unwritten.
            let finals = Array.copy originals
            let mutable final = entries
            // A write detached here gives the key another tensor than it held: a replacement too.
            let mutable replaced = after.Replaced
            if not (after.Created.IsEmpty && after.Modified.IsEmpty) then
                let position = Dictionary<string, int>(keys.Length, StringComparer.Ordinal)
                for i in 0 .. keys.Length - 1 do
                    position.[keys.[i]] <- i
                let now = after.State.Entries
                let adopt (detach: bool) (k: string) =
                    match now.TryGetValue k with
                    | true, v ->
                        match position.TryGetValue k with
                        | true, i when obj.ReferenceEquals(v, paramLeaves.[i]) -> ()
                        | found, i ->
                            let v =
                                if detach && not nested && v.requires_grad then
                                    replaced <- replaced.Add k
                                    v.detach ()
                                else v
                            final <- final.Add(k, v)
                            if found then finals.[i] <- v
                    | _ -> ()
                for k in after.Created.Unordered do
                    adopt false k
                for k in after.Modified.Unordered do
                    adopt true k
            let outWorld =
                { after with
                    State = State(final, after.State.Structure)
                    Read = KeySet.union world.Read after.Read
                    Modified = KeySet.union world.Modified after.Modified
                    Replaced = KeySet.union world.Replaced replaced
                    Created = KeySet.union world.Created after.Created }
            let mutable parameters = Map.empty
            let mutable gradients = Map.empty
            for j in 0 .. kept.Length - 1 do
                let i = kept.[j]
                parameters <- parameters.Add(keys.[i], finals.[i])
                gradients <- gradients.Add(keys.[i], gradAt j)
            let result =
                {
                    Loss = (if nested then loss else loss.detach())
                    // As the function left them (ninjax's grad returns the targets after its writes).
                    Params = State parameters
                    Grads = State gradients
                    InputGrads = inputGrads
                    Aux = aux
                }
            struct (result, outWorld))

    /// Differentiates a scalar loss with respect to state entries: (loss, params, grads).
    let grad (loss: Nj<torch.Tensor>) (targets: Target list) : Nj<torch.Tensor * State * State> =
        gradFull (fun _ -> Monad.map (fun l -> l, ()) loss) targets []
        |> Monad.map (fun g -> g.Loss, g.Params, g.Grads)

    /// Like grad, for a program that returns an auxiliary value beside the loss.
    let gradAux (lossAux: Nj<torch.Tensor * 'Aux>) (targets: Target list) : Nj<torch.Tensor * State * State * 'Aux> =
        gradFull (fun _ -> lossAux) targets []
        |> Monad.map (fun g -> g.Loss, g.Params, g.Grads, g.Aux)
