namespace Ninjax

open System
open System.Collections.Generic
open System.Runtime.CompilerServices
open System.Threading
open TorchSharp

/// What an entry of the state is for, as the modules that own it declare.
type EntryKind =
    /// A trainable parameter: a floating-point entry of a module that the module did not declare
    /// as anything else. <c>Target.Module</c> differentiates these, and only these.
    | Parameter = 0
    /// Non-trainable state a module declared with <c>Buffer</c>: running statistics, moving
    /// averages. BatchNormalization's statistics and a TorchModule's buffers are buffers.
    | Buffer = 1
    /// State of an optimizer: everything under an Optimizer's path (moments, step count, the
    /// targets' fingerprint).
    | OptimizerState = 2
    /// An entry that is not floating point (a counter, a mask), or one outside the module asked.
    | Other = 3
    /// Not classified: a summary made without the model cannot tell.
    | Unclassified = 4

/// What a module declared about the entries under its path: which are buffers, whether all of
/// them are optimizer state, and the same for its submodules. Declarations are made when a
/// module is constructed (Ninjax's layers, TorchModule, Optimizer) or when its Buffer call runs,
/// and live as long as the module object, in memory: the state itself carries no kinds.
[<Sealed; AllowNullLiteral>]
type internal Declarations() =
    // Bumped by every declaration anywhere, so a cached resolution knows when it is stale.
    static let version = ref 0L
    static let table = ConditionalWeakTable<obj, Declarations>()

    // Concurrent, so that a Buffer call on every step checks its declaration without a lock.
    let buffers = System.Collections.Concurrent.ConcurrentDictionary<string, unit>(StringComparer.Ordinal)
    let children = Dictionary<string, Declarations>(StringComparer.Ordinal)
    let mutable optimizerState = false

    // The last resolution: the structure and declaration version it holds for, and the keys.
    let mutable cached: Structure * int64 * string[] = (null, -1L, null)

    static member private Changed() = Interlocked.Increment(&version.contents) |> ignore

    /// The version of all declarations; it changes whenever any declaration is made.
    static member Version = Volatile.Read(&version.contents)

    /// The declarations of a module (or any object owning a path), created on first use.
    static member Of(owner: obj) : Declarations = table.GetValue(owner, fun _ -> Declarations())

    /// Declares the entry (key relative to the owner, such as <c>mean</c> or <c>0/running_mean</c>) a buffer.
    member _.AddBuffer(relative: string) =
        let added = not (buffers.ContainsKey relative) && buffers.TryAdd(relative, ())
        if added then Declarations.Changed()

    /// Records a submodule, so that what it declares is found under its name.
    member _.AddChild(name: string, child: Declarations) =
        let added =
            lock children (fun () ->
                match children.TryGetValue name with
                | true, existing when obj.ReferenceEquals(existing, child) -> false
                | _ ->
                    children.[name] <- child
                    true)
        if added then Declarations.Changed()

    /// The declarations of a name scope inside the owner (Module.Scoped), created on first use,
    /// so that submodules made in it are found by their path.
    member internal _.Scope(name: string) : Declarations =
        let made, scope =
            lock children (fun () ->
                match children.TryGetValue name with
                | true, existing -> false, existing
                | _ ->
                    let created = Declarations()
                    children.[name] <- created
                    true, created)
        if made then Declarations.Changed()
        scope

    /// Declares every entry under the owner optimizer state (the Optimizer does).
    member _.DeclareOptimizerState() =
        if not optimizerState then
            optimizerState <- true
            Declarations.Changed()

    member private _.IsBuffer(relative: string) = buffers.ContainsKey relative

    member private _.TryChild(name: string) =
        lock children (fun () ->
            match children.TryGetValue name with
            | true, c -> c
            | _ -> null)

    /// The kind of the entry at a key relative to the owner holding the given tensor: the
    /// deepest declaring module decides; undeclared floating-point entries are parameters.
    member this.KindOf(relative: string, value: torch.Tensor) : EntryKind =
        let rec walk (d: Declarations) (rel: string) =
            if d.IsOptimizerState then EntryKind.OptimizerState
            elif d.IsBuffer rel then EntryKind.Buffer
            else
                match rel.IndexOf '/' with
                | -1 -> EntryKind.Parameter
                | i ->
                    match d.TryChild(rel.Substring(0, i)) with
                    | null -> EntryKind.Parameter
                    | child -> walk child (rel.Substring(i + 1))
        match walk this relative with
        | EntryKind.Parameter when not (torch.is_floating_point value || torch.is_complex value) -> EntryKind.Other
        | kind -> kind

    member private _.IsOptimizerState = optimizerState

    /// The last resolution, if it was made for this structure under the current declarations.
    member internal _.Cached(structure: Structure, current: int64) : string[] =
        let s, v, keys = cached
        if obj.ReferenceEquals(s, structure) && v = current then keys else null

    member internal _.Remember(structure: Structure, current: int64, keys: string[]) = cached <- (structure, current, keys)

/// Which entries of a state are a module's trainable parameters.
module internal Parameters =

    /// The keys under a module's path with their kinds, in key order.
    let kinds (state: State) (path: string) (declarations: Declarations) : (string * EntryKind)[] =
        let prefix = path + "/"
        let entries = state.Entries
        [| for k in state.KeysUnder path do
               // The key equal to the path belongs to the parent, not to the module.
               if k.Length > prefix.Length then k, declarations.KindOf(k.Substring prefix.Length, entries.[k]) |]

    /// The keys of a module's trainable parameters in a state, in key order: its floating-point
    /// entries that it and its submodules did not declare buffers or optimizer state. Cached
    /// per state structure, so a training step pays O(1) after the first.
    let keys (state: State) (path: string) (declarations: Declarations) : string[] =
        let version = Declarations.Version
        match declarations.Cached(state.Structure, version) with
        | null ->
            let found =
                kinds state path declarations
                |> Array.choose (fun (k, kind) -> if kind = EntryKind.Parameter then Some k else None)
            declarations.Remember(state.Structure, version, found)
            found
        | found -> found

    /// The keys a <c>Target.Module</c> differentiates: the module's parameters. Empty when the
    /// state holds nothing under the path (the caller names the target); an error naming what
    /// the module holds when none of it is a parameter.
    let targetKeys (state: State) (path: string) (declarations: Declarations) : string[] =
        match keys state path declarations with
        | [||] ->
            let all = kinds state path declarations
            if all.Length > 0 then
                let describe (kind: EntryKind) (what: string) =
                    match all |> Array.filter (fun (_, k) -> k = kind) |> Array.map fst with
                    | [||] -> None
                    | ks -> Some(sprintf "%s (%s)" what (String.Join(", ", Seq.truncate 5 ks) + (if ks.Length > 5 then ", ..." else "")))
                let held =
                    [ describe EntryKind.Buffer "buffers"
                      describe EntryKind.OptimizerState "optimizer state"
                      describe EntryKind.Other "entries that are not floating point" ]
                    |> List.choose id
                let byKey = Text.code (Caller.fromStack ()) (sprintf "Target.Key \"%s/...\"" path) (sprintf "its key as a string (\"%s/...\")" path)
                raise (
                    ArgumentException(
                        sprintf
                            "Module '%s' holds no trainable parameters to differentiate: its entries are %s. Target the modules whose parameters should change, or name an entry with %s."
                            path (String.Join("; ", held)) byKey,
                        "targets"
                    )
                )
            [||]
        | found -> found
