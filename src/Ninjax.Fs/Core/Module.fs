namespace Ninjax

open System
open System.Collections.Concurrent
open System.Collections.Generic
open System.Runtime.InteropServices
open System.Text.RegularExpressions
open TorchSharp

/// A submodule slot that Sub opened: the next module constructed takes its path.
type internal PendingSub(path: string) =
    member _.Path = path
    member val Taken = false with get, set

/// Scoping of modules while they are constructed. .NET constructors cannot be wrapped the way
/// ninjax wraps __init__, so a parent opens a slot with Sub and the child's base constructor
/// takes it: F# classes and C# subclasses get the same paths, and construction order decides
/// nothing else.
type internal Construction private () =
    [<ThreadStatic; DefaultValue>]
    static val mutable private pending: Stack<PendingSub>

    static member Stack =
        if isNull Construction.pending then Construction.pending <- Stack()
        Construction.pending

/// Caches compiled filters so GetM never compiles a regex per call.
module internal Filters =
    let private cache = ConcurrentDictionary<string, Regex>()

    /// The regex for a GetM filter, anchored at the start of the relative key as in ninjax.
    let get (pattern: string) : Regex =
        cache.GetOrAdd(pattern, fun p -> Regex(@"\A(?:" + p + ")", RegexOptions.Compiled ||| RegexOptions.CultureInvariant))

/// The base class of every module. A module owns the state keys under its path; it reads and
/// writes them with Get, Put, Value, Read and Write inside a purified call, and creates
/// submodules with Sub (in its constructor or inline). Give top-level modules a name; a module
/// made through Sub takes the name Sub gives it, under its parent's path.
[<AllowNullLiteral>]
type Module([<Optional; DefaultParameterValue(null: string)>] name: string) as this =

    let path =
        let stack = Construction.Stack
        if stack.Count > 0 && not (stack.Peek().Taken) then
            let slot = stack.Peek()
            slot.Taken <- true
            slot.Path
        elif isNull name && stack.Count > 0 then
            raise (
                InvalidOperationException(
                    sprintf
                        "A %s without a name was constructed while '%s' was being built. Create submodules with %s, or give it a name to place it under '%s'."
                        (this.GetType().Name) (stack.Peek().Path)
                        (Text.code (Ambient.language ()) "this.Sub(\"name\", fun () -> ...)" "Sub(\"name\", () => new ...)")
                        (Ambient.currentScope ())
                )
            )
        elif isNull name then
            raise (
                ArgumentException(
                    sprintf
                        "A top-level %s needs a name (pass %s to its constructor), or create it as a submodule with %s."
                        (this.GetType().Name)
                        (Text.code (Ambient.language ()) "name = \"model\"" "name: \"model\"")
                        (Text.code (Ambient.language ()) "parent.Sub(\"name\", fun () -> ...)" "parent.Sub(\"name\", () => new ...)"),
                    "name"
                )
            )
        else
            // Constructed by name: under the current name scope, as in ninjax (the root, a scope
            // entered with Nj.scope or Scoped, or the module Sub is building).
            Key.validateName name
            Key.join (Ambient.currentScope ()) name

    let children = Dictionary<string, Module>()

    // What this module declares about its entries (buffers, optimizer state) and its submodules'.
    let declarations = Declarations.Of this

    // The absolute keys of the entries this module has named, validated once: a module's Get and
    // Put run on every step with the same few names.
    let keys = ConcurrentDictionary<string, string>(StringComparer.Ordinal)
    let makeKey = Func<string, string>(fun entry -> Key.validate entry; path + "/" + entry)

    let keyOf (entry: string) =
        if isNull entry then Key.validate entry // raises, naming the problem
        match keys.TryGetValue entry with
        | true, key -> key
        | _ -> keys.GetOrAdd(entry, makeKey)

    /// The module's path, such as <c>model/h1</c>; its state keys lie under it.
    member _.Path: string = path

    /// The last segment of the path.
    member _.Name: string =
        match path.LastIndexOf '/' with
        | -1 -> path
        | i -> path.Substring(i + 1)

    /// Reads the entry <paramref name="name"/> of this module, creating it with
    /// <paramref name="ctor"/> on first use (ninjax's get).
    member _.Get(name: string, ctor: Func<torch.Tensor>) : torch.Tensor =
        if isNull ctor then raise (ArgumentNullException("ctor", sprintf "No constructor given for '%s'." name))
        Ambient.exec (Prog.getKey (keyOf name) (Some(Ambient.ofImpure ctor.Invoke)))

    /// Reads the existing entry <paramref name="name"/> of this module.
    member _.Get(name: string) : torch.Tensor = Ambient.exec (Prog.getKey (keyOf name) None)

    /// Writes the entry <paramref name="name"/> of this module and returns the value.
    member _.Put(name: string, value: torch.Tensor) : torch.Tensor = Ambient.exec (Prog.putKey (keyOf name) value)

    /// Writes several entries given by absolute keys, which must belong to this module.
    member this.Put(mapping: IReadOnlyDictionary<string, torch.Tensor>) : unit = this.PutM mapping

    /// The entries of this module (absolute keys) whose key relative to the module the regex
    /// matches from its start; every returned key counts as read.
    member _.GetM([<Optional; DefaultParameterValue(".*")>] filter: string) : State =
        let regex = if filter = ".*" then None else Some(Filters.get filter)
        Ambient.exec (Prog.scopeAt path (Prog.getm regex))

    /// Writes several entries given by absolute keys, which must belong to this module.
    member _.PutM(mapping: IReadOnlyDictionary<string, torch.Tensor>) : unit =
        if isNull mapping then raise (ArgumentNullException("mapping"))
        let entries =
            match mapping with
            | :? State as s -> s
            | m -> State(m |> Seq.fold (fun (acc: Map<_, _>) kv -> acc.Add(kv.Key, kv.Value)) Map.empty)
        Ambient.exec (Prog.scopeAt path (Prog.putm entries))

    /// Defines and reads an entry (ninjax's value): created from <paramref name="make"/> on first use.
    member this.Value(name: string, make: Func<torch.Tensor>) : torch.Tensor = this.Get(name, make)

    /// Reads an existing entry of this module (ninjax's read).
    member this.Read(name: string) : torch.Tensor = this.Get name

    /// Updates an existing entry of this module (ninjax's write); shape and dtype must match.
    member _.Write(name: string, value: torch.Tensor) : torch.Tensor =
        let key = keyOf name
        Ambient.exec (Prog.bind (fun (_: torch.Tensor) -> Prog.putKey key value) (Prog.getKey key None))

    /// The entries of this module keyed RELATIVE to its path (ninjax's values): <c>w</c> and
    /// <c>h1/b</c> for <c>model/w</c> and <c>model/h1/b</c>. GetM returns the same entries keyed
    /// absolutely. Every returned entry counts as read.
    member _.Values: State = Ambient.exec (Prog.readUnder path None (fun _ relative -> relative))

    /// Reads the entry <paramref name="name"/> of this module, creating it with
    /// <paramref name="ctor"/> on first use, and declares it a buffer: state the module keeps
    /// that is not trained (running statistics, a moving average). Target.Module leaves buffers
    /// out of gradients, and summaries count them apart from parameters.
    member _.Buffer(name: string, ctor: Func<torch.Tensor>) : torch.Tensor =
        if isNull ctor then raise (ArgumentNullException("ctor", sprintf "No constructor given for '%s'." name))
        let key = keyOf name
        declarations.AddBuffer name
        Ambient.exec (Prog.getKey key (Some(Ambient.ofImpure ctor.Invoke)))

    /// Declares entries of this module (names relative to its path, such as <c>avg</c>)
    /// buffers, before they exist: call it in the constructor so that the declaration holds for
    /// a state loaded from a checkpoint before any call ran (Ninjax's layers do). Buffer declares
    /// the entry it reads too, but only once it runs.
    member _.DeclareBuffers([<ParamArray>] names: string[]) =
        if isNull names then raise (ArgumentNullException("names"))
        for n in names do
            Key.validate n
            declarations.AddBuffer n

    /// Declares everything under this module optimizer state (the Optimizer does).
    member internal _.DeclareOptimizerState() = declarations.DeclareOptimizerState()

    /// The keys (absolute, in order) of this module's trainable parameters in
    /// <paramref name="state"/>: its floating-point entries and its submodules', without the
    /// buffers and optimizer state they declare. These are what <c>Target.Module</c> differentiates.
    member _.ParameterKeys(state: State) : IReadOnlyList<string> =
        if isNull state then raise (ArgumentNullException("state"))
        Parameters.keys state path declarations

    /// The keys of this module's trainable parameters in the state of the purified call that is running.
    member this.ParameterKeys() : IReadOnlyList<string> = this.ParameterKeys(Ambient.exec Prog.state)

    /// This module's trainable parameters in <paramref name="state"/>, keyed absolutely.
    member this.Parameters(state: State) : State =
        let keys = this.ParameterKeys state
        State.ofValidPairs (keys |> Seq.map (fun k -> k, state.[k]))

    /// This module's trainable parameters in the running purified call (each counts as read).
    member this.Parameters() : State =
        let keys = this.ParameterKeys()
        State.ofValidPairs (keys |> Seq.map (fun k -> k, Ambient.exec (Prog.getKey k None)))

    /// What each entry under this module's path in <paramref name="state"/> is for: parameter,
    /// buffer, optimizer state or other (not floating point), keyed absolutely.
    member _.EntryKinds(state: State) : IReadOnlyDictionary<string, EntryKind> =
        if isNull state then raise (ArgumentNullException("state"))
        let kinds = Parameters.kinds state path declarations
        Dictionary<string, EntryKind>(kinds |> Seq.map (fun (k, v) -> KeyValuePair(k, v)), StringComparer.Ordinal)

    /// The submodule <paramref name="name"/>, constructed by <paramref name="make"/> on first use
    /// with the path <c>Path/name</c>, or <c>Path/scope/name</c> inside a scope of this module
    /// (<see cref="Scoped"/>). Works in the constructor and inline in methods; the child's
    /// constructor runs in the child's scope.
    member _.Sub<'M when 'M :> Module>(name: string, make: Func<'M>) : 'M =
        Key.validateName name
        // Inside one of this module's scopes (ninjax's method scopes) the child goes under it and
        // is remembered by its path relative to this module.
        let scope = Ambient.currentScope ()
        let handle, childPath =
            if scope = path then name, path + "/" + name
            elif Key.isUnder path scope then scope.Substring(path.Length + 1) + "/" + name, scope + "/" + name
            else name, path + "/" + name
        lock children (fun () ->
            match children.TryGetValue handle with
            | true, existing ->
                match existing with
                | :? 'M as m -> m
                | other ->
                    raise (
                        InvalidOperationException(
                            sprintf "Submodule '%s' already exists as a %s, not a %s." other.Path (other.GetType().Name) typeof<'M>.Name
                        )
                    )
            | _ ->
                if isNull make then raise (ArgumentNullException("make", sprintf "Submodule '%s' does not exist yet; give a constructor." childPath))
                let slot = PendingSub(childPath)
                let stack = Construction.Stack
                stack.Push slot
                let made =
                    try
                        // ninjax builds a module in its own scope: what its constructor makes by
                        // name goes under it.
                        Ambient.inScope childPath make.Invoke
                    finally
                        stack.Pop() |> ignore
                if isNull (box made) then raise (InvalidOperationException(sprintf "The constructor of submodule '%s' returned null." slot.Path))
                if made.Path <> slot.Path then
                    raise (
                        InvalidOperationException(
                            sprintf "The constructor given to Sub for '%s' must construct the module itself; it returned '%s'." slot.Path made.Path
                        )
                    )
                children.[handle] <- made
                // A child made inside a scope of this module (handle scope/name) is declared under
                // that scope, so its declarations are found by its path.
                let segments = handle.Split '/'
                let parent = segments |> Array.take (segments.Length - 1) |> Array.fold (fun (d: Declarations) seg -> d.Scope seg) declarations
                parent.AddChild(name, Declarations.Of made)
                made)

    /// Runs <paramref name="f"/> in this module's name scope, as ninjax runs every method of a
    /// module: modules it constructs by name, and entries it reads and writes by relative name
    /// (Nj.get, Nj.scope), go under <c>Path</c>. Inside purified calls and in constructors.
    member _.Scoped(f: Func<'T>) : 'T =
        if isNull f then raise (ArgumentNullException("f"))
        Ambient.inScope path f.Invoke

    /// Runs <paramref name="f"/> in the scope <c>Path/name</c> (ninjax's method scope,
    /// <c>@nj.scope('name')</c> on a method): submodules made there with Sub, modules constructed
    /// by name and entries read by relative name go under it (<c>foo/method2/sub2/...</c>).
    member _.Scoped(name: string, f: Func<'T>) : 'T =
        if isNull f then raise (ArgumentNullException("f"))
        Key.validate name
        Ambient.inScope (path + "/" + name) f.Invoke

    /// Runs <paramref name="f"/> in this module's name scope (see the overload returning a value).
    member _.Scoped(f: Action) : unit =
        if isNull f then raise (ArgumentNullException("f"))
        Ambient.inScope path f.Invoke

    /// Runs <paramref name="f"/> in the scope <c>Path/name</c> (see the overload returning a value).
    member _.Scoped(name: string, f: Action) : unit =
        if isNull f then raise (ArgumentNullException("f"))
        Key.validate name
        Ambient.inScope (path + "/" + name) f.Invoke

    /// Shows the type and path.
    override _.ToString() = sprintf "%s(%s)" (this.GetType().Name) path

    interface IScoped with
        member _.Path = path

/// A module holding one value under <c>Path/value</c> (ninjax's Variable).
[<AllowNullLiteral>]
type Variable(make: Func<torch.Tensor>, [<Optional; DefaultParameterValue(null: string)>] name: string) =
    inherit Module(name)

    /// Reads the value, creating it on first use.
    member this.Read() : torch.Tensor = this.Value("value", make)

    /// Writes the value (creating it first if needed, so its shape and dtype are known).
    member this.Write(value: torch.Tensor) : torch.Tensor =
        this.Value("value", make) |> ignore
        this.Write("value", value)

/// A module holding a structured value (ninjax's Tree): an F# record, tuple, array, list or map, a
/// State, a C# record or tuple, nested as deep as needed, whose tensors are entries under the
/// module's path, named by their place in the value (<c>Path/mu/0</c>, <c>Path/count</c>). Read
/// builds the value from the state; Write stores a value of the same structure (the same
/// containers with the same names; every tensor its entry's shape and dtype).
[<AllowNullLiteral>]
type Tree<'T>(make: Func<'T>, [<Optional; DefaultParameterValue(null: string)>] name: string) =
    inherit Module(name)

    do
        if isNull make then
            raise (ArgumentNullException("make", "A Tree needs a function that makes its initial value."))

    // The structure and the entries' absolute keys, learnt from the first value made.
    let mutable def: TreeDef = null
    let mutable keys: string[] = null

    /// The entries' values in flatten's order, created from a value made by make when missing.
    /// make runs when the structure is not known yet or an entry is missing; when every entry
    /// exists, what make did (randomness drawn, entries read) is discarded, so the call's outcome
    /// does not depend on whether this module object has run before.
    member private this.Entries() : torch.Tensor[] =
        let path = this.Path
        let readAll (keys: string[]) : Nj<torch.Tensor[]> =
            Nj(fun env world ->
                let values = Array.zeroCreate keys.Length
                let mutable w = world
                for i in 0 .. keys.Length - 1 do
                    let struct (v, w1) = Monad.runIn env w (Prog.getKey keys.[i] None)
                    values.[i] <- v
                    w <- w1
                struct (values, w))
        Ambient.exec (
            Nj(fun env world ->
                let known = keys
                if not (isNull known) && known |> Array.forall world.State.Entries.ContainsKey then
                    Monad.runIn env world (readAll known)
                else
                    let struct (value, after) = Monad.runIn env world (Ambient.ofImpure make.Invoke)
                    let pairs, made =
                        try
                            Containers.flatten (box value)
                        with :? ArgumentException as e ->
                            raise (ArgumentException(sprintf "The initial value of Tree '%s' cannot be stored: %s" path e.Message, "make", e))
                    if not (isNull def) && not (made.Equals def) then
                        raise (
                            InvalidOperationException(
                                sprintf "Tree '%s' was made with the structure %O before and %O now (%s): make must return the same structure every time." path def made (Containers.difference def made)
                            )
                        )
                    let absolute = pairs |> Array.map (fun (k, _) -> path + "/" + k)
                    def <- made
                    keys <- absolute
                    if absolute |> Array.forall world.State.Entries.ContainsKey then Monad.runIn env world (readAll absolute)
                    else Monad.runIn env after (Prog.getMany absolute (fun i -> snd pairs.[i])))
        )

    /// The structure of the value, once the module has read or written it; null before.
    member _.Structure: TreeDef = def

    /// Reads the value, creating its entries from make on first use.
    member this.Read() : 'T =
        let values = this.Entries()
        Containers.unflattenInOrder def values :?> 'T

    /// Writes a value of the same structure; returns it. ArgumentException naming where the
    /// structure differs, or the key whose shape or dtype differs.
    member this.Write(value: 'T) : 'T =
        let pairs, written =
            try
                Containers.flatten (box value)
            with :? ArgumentException as e ->
                raise (ArgumentException(sprintf "Cannot write Tree '%s': %s" this.Path e.Message, "value", e))
        this.Entries() |> ignore
        if not (written.Equals def) then
            raise (
                ArgumentException(
                    sprintf "Cannot write Tree '%s': it holds %O, the value has the structure %O (%s). A write must keep the structure." this.Path def written (Containers.difference def written),
                    "value"
                )
            )
        Ambient.exec (Prog.putMany (Array.map2 (fun k (_, t) -> k, t) keys pairs))
        value
