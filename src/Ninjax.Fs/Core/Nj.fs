namespace Ninjax

open TorchSharp

/// The ninjax-style API for impure code: modules and functions that read and write the state of
/// the purified call they run in. Each function here is a Prog operation run by the ambient
/// interpreter (Ambient.exec), so it means exactly what the monadic version means.
[<RequireQualifiedAccess; CompilationRepresentation(CompilationRepresentationFlags.ModuleSuffix)>]
module Nj =

    let private lift (f: 'A -> 'B) : 'A -> Nj<'B> = fun a -> Ambient.ofImpure (fun () -> f a)

    /// Purifies an impure function with options: <c>state, output = f' state arg</c> (ninjax's pure).
    /// Messages name it after the method it calls (<c>MyModel.Train</c>) unless the options name it.
    let purifyWith (opts: Options) (f: 'A -> 'B) : State -> 'A -> State * 'B = Purify.fn (Options.namedAfter f opts) (lift f)

    /// Purifies an impure function with default options: no seed, create off, modify on.
    let purify (f: 'A -> 'B) : State -> 'A -> State * 'B = purifyWith Options.defaults f

    /// Purifies an impure function and also returns the keys it read, modified and created (track=true).
    let purifyTracked (opts: Options) (f: 'A -> 'B) : State -> 'A -> Outcome<'B> =
        let opts = Options.namedAfter f opts
        fun state arg -> Purify.run opts (lift f arg) state

    /// One call of an impure function on a state, with options that already name it: the C#
    /// facade's path, which purifies once and calls this per step.
    let internal call (opts: Options) (f: 'A -> 'B) (state: State) (arg: 'A) : Outcome<'B> = Purify.run opts (lift f arg) state

    /// call without the keys read, modified and created: the C# facade's untracked path.
    let internal callUntracked (opts: Options) (f: 'A -> 'B) (state: State) (arg: 'A) : struct (State * 'B) =
        let struct (output, world) = Purify.execute opts (lift f arg) state
        struct (world.State, output)

    /// Runs an impure function with create and ignore on and returns the state it populates
    /// (ninjax's init). Existing entries are kept as they are.
    let initWith (opts: Options) (f: 'A -> 'B) : State -> 'A -> State = Purify.init (Options.namedAfter f opts) (lift f)

    /// initWith with a seed, the common case: <c>Nj.init 0L model.Train State.empty (x, y)</c>.
    let init (seed: int64) (f: 'A -> 'B) : State -> 'A -> State = initWith (Options.seeded seed) f

    /// The shapes and dtypes init would create, without the training step (JAX's eval_shape): a
    /// State of meta-device tensors, which hold no memory, for Checkpoint.loadInto or a summary.
    /// The function runs once as in init but without gradients; tensor arguments on the meta
    /// device stand for inputs of their shape (<c>torch.empty([| 1L; 64L |], device = torch.META)</c>).
    let initShapesWith (opts: Options) (f: 'A -> 'B) : State -> 'A -> State = Purify.initShapes (Options.namedAfter f opts) (lift f)

    /// initShapesWith with a seed: <c>Nj.initShapes 0L model.Train State.empty (x, y)</c>.
    let initShapes (seed: int64) (f: 'A -> 'B) : State -> 'A -> State = initShapesWith (Options.seeded seed) f

    /// A fresh random generator derived from the call's seed and a counter (ninjax's rng/seed).
    let rng () : torch.Generator = Ambient.exec Prog.rng

    /// A fresh random generator when the call has a seed, None otherwise (ninjax's
    /// seed(optional=True)).
    let tryRng () : torch.Generator option = Ambient.exec Prog.tryRng

    /// True while the current call may create entries (ninjax's creating).
    let creating () : bool = Ambient.exec Prog.creating

    /// True when the current call owns the tensor and may update it in place (a donating call;
    /// see Prog.mayUpdateInPlace): then <c>t.lerp_(...)</c> and a put of <c>t</c>, otherwise
    /// a new tensor. Same results either way, fewer allocations when true.
    let mayUpdateInPlace (tensor: torch.Tensor) : bool = Ambient.exec (Prog.mayUpdateInPlace tensor)

    /// The whole state of the current call as it is now (ninjax's state).
    let state () : State = Ambient.exec Prog.state

    /// Reads an entry relative to the current scope, creating it on first use.
    let get (name: string) (ctor: unit -> torch.Tensor) : torch.Tensor = Ambient.exec (Prog.get name (Ambient.ofImpure ctor))

    /// Reads an existing entry relative to the current scope.
    let read (name: string) : torch.Tensor = Ambient.exec (Prog.read name)

    /// Writes an entry relative to the current scope.
    let put (name: string) (value: torch.Tensor) : torch.Tensor = Ambient.exec (Prog.put name value)

    /// Runs impure code one name scope deeper (ninjax's scope): entries it reads and writes by
    /// relative name, and modules it constructs by name, go under <paramref name="name"/>. Works
    /// inside purified calls and outside them, while building modules.
    let scope (name: string) (f: unit -> 'T) : 'T =
        Key.validate name
        Ambient.inScope (Key.join (Ambient.currentScope ()) name) f

    /// The current name scope ("" at the root).
    let currentScope () : string = Ambient.currentScope ()

    /// Gradient of an impure scalar loss with respect to targets: <c>loss, params, grads</c>.
    let grad (f: 'A -> torch.Tensor) (targets: Target list) : 'A -> torch.Tensor * State * State =
        fun arg -> Ambient.exec (Prog.grad (lift f arg) targets)

    /// Gradient of an impure function returning a loss and an auxiliary value.
    let gradAux (f: 'A -> torch.Tensor * 'Aux) (targets: Target list) : 'A -> torch.Tensor * State * State * 'Aux =
        fun arg -> Ambient.exec (Prog.gradAux (lift f arg) targets)

    /// Gradient with respect to state targets and explicit tensor inputs at once.
    let gradFull (f: torch.Tensor list -> torch.Tensor * 'Aux) (targets: Target list) (inputs: torch.Tensor list) : Gradient<'Aux> =
        Ambient.exec (Prog.gradFull (lift f) targets inputs)

    /// Gradient with respect to arguments by position (ninjax's <c>grad(f, [0, 2])</c>): the
    /// elements of a tuple argument are numbered from 0, a single tensor is position 0. Returns
    /// the loss, the tensors at those positions and their gradients.
    let gradArgs (argnums: int list) (f: 'A -> torch.Tensor) : 'A -> torch.Tensor * torch.Tensor list * torch.Tensor list =
        fun arg -> Ambient.exec (Prog.gradArgs argnums (lift f) arg)

    /// Calls one of two functions on <paramref name="arg"/>; while creating, both run first so
    /// the state holds both branches' entries (ninjax's cond).
    let cond (pred: bool) (onTrue: 'A -> 'T) (onFalse: 'A -> 'T) (arg: 'A) : 'T =
        Ambient.exec (Prog.cond pred (lift onTrue arg) (lift onFalse arg))

    /// Loops a step over the slices of xs along an axis, threading a carry and the state, and
    /// stacks the step outputs along that axis (ninjax's scan).
    let scanAxis (axis: int) (step: 'C -> torch.Tensor -> 'C * torch.Tensor) (carry: 'C) (xs: torch.Tensor) : 'C * torch.Tensor =
        Ambient.exec (Prog.scan (fun c x -> Ambient.ofImpure (fun () -> step c x)) carry xs axis)

    /// scanAxis over the first axis.
    let scan (step: 'C -> torch.Tensor -> 'C * torch.Tensor) (carry: 'C) (xs: torch.Tensor) : 'C * torch.Tensor =
        scanAxis 0 step carry xs

    /// scan with options (ninjax's scan(..., reverse=True, axis=...)): <c>Nj.scanWith
    /// (ScanOptions.defaults |> ScanOptions.reversed) step carry xs</c> loops from the last slice
    /// to the first; the outputs keep the order of xs.
    let scanWith (options: ScanOptions) (step: 'C -> torch.Tensor -> 'C * torch.Tensor) (carry: 'C) (xs: torch.Tensor) : 'C * torch.Tensor =
        Ambient.exec (Prog.scanWith options (fun c x -> Ambient.ofImpure (fun () -> step c x)) carry xs)

    /// Loops a step <paramref name="length"/> times without xs (ninjax's scan with a length and
    /// no xs): the step gets the carry and its index (0 to length - 1), and its outputs are stacked
    /// in index order, whichever direction the options give.
    let scanLength (options: ScanOptions) (length: int64) (step: 'C -> int64 -> 'C * torch.Tensor) (carry: 'C) : 'C * torch.Tensor =
        Ambient.exec (Prog.scanLength options length (fun c i -> Ambient.ofImpure (fun () -> step c i)) carry)

    /// Repeats a body while a condition holds, threading a carry and the state, with fresh
    /// randomness per iteration.
    let whileLoop (condition: 'C -> bool) (body: 'C -> 'C) (carry: 'C) : 'C =
        Ambient.exec (Prog.whileLoop (lift condition) (lift body) carry)

    /// Runs a tensor function without keeping its activations; gradients recompute them
    /// (ninjax's checkpoint). Gradients reach the inputs and the state entries it reads.
    let checkpoint (f: torch.Tensor list -> torch.Tensor) (inputs: torch.Tensor list) : torch.Tensor =
        Ambient.exec (Prog.checkpoint (lift f) inputs)
