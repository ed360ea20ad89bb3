/// Property tests for Ninjax: the impure (Module/Nj) API and the monadic (Prog) API mean the
/// same thing, purification is pure, init is idempotent, flags follow ninjax's rules and
/// randomness is a function of the seed. FsCheck 3 is driven directly (Check.One with
/// QuickThrowOnFailure inside an Expecto testCase), so no Expecto.FsCheck package is needed.
module Ninjax.Tests.PropertyTests

open System
open System.Collections.Generic
open System.Text.RegularExpressions
open Expecto
open FsCheck
open FsCheck.FSharp
open TorchSharp
open Ninjax

// =============================================================================================
// Small helpers

/// The shape an entry gets from its name, so collisions between programs keep shapes consistent.
let shapeOf (name: string) : int64[] =
    match name with
    | "a" -> [| 2L |]
    | "b" -> [| 3L |]
    | _ -> [| 2L; 2L |]

/// A shape no entry ever has, for writes that must fail with a mismatch.
let wrongShape: int64[] = [| 5L |]

let numel (shape: int64[]) = shape |> Array.fold (fun a b -> a * int b) 1

/// A float32 tensor of a shape filled with a constant.
let constant (shape: int64[]) (c: int) : torch.Tensor =
    torch.tensor(Array.create (numel shape) (float32 c)).reshape shape

/// t + c, as float32.
let addc (t: torch.Tensor) (c: int) : torch.Tensor = t.add (torch.tensor (float32 c))

/// Same shape, dtype and bit-identical values.
let identical (a: torch.Tensor) (b: torch.Tensor) : bool =
    a.shape = b.shape
    && a.dtype = b.dtype
    && (if a.numel () = 0L then true // (TorchSharp's TensorAccessor cannot read an empty [3, 0])
        elif a.dtype = torch.float32 then
            let bits (t: torch.Tensor) =
                t.detach().contiguous().data<float32>().ToArray() |> Array.map BitConverter.SingleToInt32Bits
            bits a = bits b
        else
            torch.eq(a, b).all().item<bool> ())

let show (t: torch.Tensor) =
    let values =
        if t.IsInvalid then "<disposed>"
        elif t.dtype = torch.float32 then sprintf "%A" (t.detach().contiguous().data<float32>().ToArray())
        else t.ToString(TensorStringStyle.Julia)
    sprintf "%A %O %s" t.shape t.dtype values

let expectIdentical (actual: torch.Tensor) (expected: torch.Tensor) (msg: string) =
    if not (identical actual expected) then
        failtestf "%s: expected %s, got %s" msg (show expected) (show actual)

/// Same keys and bit-identical tensors.
let expectSameState (actual: State) (expected: State) (msg: string) =
    Expect.sequenceEqual (State.keys actual) (State.keys expected) (msg + ": keys")
    for k in State.keys expected do
        expectIdentical actual.[k] expected.[k] (sprintf "%s: entry %s" msg k)

/// A snapshot of a state: its keys, the tensor objects and copies of their values.
type Snapshot = { Keys: string list; Objects: torch.Tensor list; Copies: torch.Tensor list }

let snapshot (s: State) : Snapshot =
    let pairs = State.toSeq s |> List.ofSeq
    { Keys = pairs |> List.map fst
      Objects = pairs |> List.map snd
      Copies = pairs |> List.map (fun (_, t) -> t.detach().clone ()) }

/// The state still has the same keys, the same tensor objects and the same values.
let expectUnchanged (s: State) (snap: Snapshot) (msg: string) =
    Expect.sequenceEqual (State.keys s) snap.Keys (msg + ": keys changed")
    List.zip3 snap.Keys snap.Objects snap.Copies
    |> List.iter (fun (k, o, c) ->
        Expect.isTrue (obj.ReferenceEquals(s.[k], o)) (sprintf "%s: entry %s is another tensor object" msg k)
        Expect.isFalse o.IsInvalid (sprintf "%s: entry %s was disposed" msg k)
        expectIdentical o c (sprintf "%s: entry %s changed its values" msg k))

/// Runs f and returns its result or the exception it raised.
let attempt (f: unit -> 'T) : Result<'T, exn> =
    try Ok(f ()) with e -> Error e

/// Runs a property with FsCheck, throwing (and so failing the Expecto test) on failure.
let check (maxTest: int) (name: string) (property: 'P) =
    Check.One(name, Config.QuickThrowOnFailure.WithMaxTest(maxTest).WithQuietOnSuccess(true), property)

/// Options with a seed and flags.
let optsOf (seed: int64) (create: bool) (modify: bool) (ignore: bool) : Options =
    // One name for the monadic program and the impure function, so that their messages compare equal.
    Options.seeded seed |> Options.withCreate create |> Options.withModify modify |> Options.withIgnore ignore |> Options.named "f"

// =============================================================================================
// The instruction language

/// How Get creates a missing entry.
type Ctor =
    /// A constant tensor of the entry's shape.
    | CConst of int
    /// A normal sample of the entry's shape drawn from a fresh generator (Prog.rng / Nj.rng()).
    | CRand

/// What Put writes.
type Value =
    /// A constant of the entry's shape (creates the key when missing).
    | VConst of int
    /// The current value plus a constant (reads the key first; fails when missing).
    | VIncr of int
    /// A tensor of a shape no entry has (a mismatch when the key exists).
    | VWrongShape

/// What to differentiate with respect to.
type GTarget =
    /// One entry of the current scope (Target.Key in both interpretations).
    | GKey of string
    /// The whole current scope: Target.Key path (monadic) versus Target.Module this (impure).
    | GSelf

type Instr =
    /// Read an entry, creating it with a constructor (None: it must exist).
    | Get of string * Ctor option
    /// Write an entry.
    | Put of string * Value
    /// Read the entries of the current scope, optionally filtered (regex anchored at the start).
    | GetM of string option
    /// Write back the (filtered) entries of the current scope, each plus a constant.
    | PutM of string option * int
    /// Run instructions in a child scope (a submodule in the impure interpretation).
    | Scope of string * Instr list
    /// Draw a generator and sample a uniform tensor of that many elements.
    | Rng of int
    /// Gradient of the sum of squares of some entries of the current scope (plus, when the flag
    /// is set, of every entry of the scope read through GetM, so that any target in it is read).
    | Grad of string list * GTarget * bool
    /// A name scope inside the module (Prog.scope against this.Scoped(name), then Nj.scope when
    /// nested); entries in it are read and written by relative name (Nj.get, Nj.put).
    | Local of string * Instr list
    /// A scan over a length, forwards or reversed, running the body each step.
    | Loop of int * bool * Instr list
    /// A while loop running the body a number of times.
    | While of int * Instr list
    /// A branch between two bodies.
    | Cond of bool * Instr list * Instr list

/// One observation a program makes; the output of a program is their list.
type Obs = string * torch.Tensor

let entryNames = [ "a"; "b"; "c" ]
// Scope names are kept apart from entry names: a scope "a" beside an entry "a" makes
// Target.Module / Target.Key of the scope select the parent's entry too (see the pending test
// at the end), so gradients with respect to such a scope would fail for that reason alone.
let scopeNames = [ "s"; "t"; "u" ]
let filters = [ "a.*"; "b"; "s/.*"; "(a|c)$"; "t" ]
// Names of Local scopes, apart from submodules' and entries' names for the same reason.
let localNames = [ "p"; "q" ]

let genName = Gen.elements entryNames

let genCtor =
    Gen.frequency [ 3, Gen.choose (-3, 3) |> Gen.map CConst; 2, Gen.constant CRand ]

let genValue =
    Gen.frequency [ 3, Gen.choose (-3, 3) |> Gen.map VConst; 3, Gen.choose (1, 3) |> Gen.map VIncr; 2, Gen.constant VWrongShape ]

let genFilter = Gen.frequency [ 2, Gen.constant None; 3, Gen.elements filters |> Gen.map Some ]

/// One step of a program: an instruction, or (in safe programs) an instruction preceded by the
/// Gets that make the entries it needs exist. Risky steps may read missing entries, write
/// mismatching shapes or differentiate keys the loss never reads.
let rec genStep (safe: bool) (depth: int) : Gen<Instr list> =
    let getWith n = genCtor |> Gen.map (fun c -> Get(n, Some c))
    let leaves =
        [ 6, gen {
                let! n = genName
                let! c =
                    if safe then genCtor |> Gen.map Some
                    else Gen.frequency [ 5, genCtor |> Gen.map Some; 1, Gen.constant None ]
                return [ Get(n, c) ]
             }
          4, gen {
                let! n = genName
                if safe then
                    // Rarely a mismatching write to the entry just made: the one way a "safe"
                    // program fails (with ArgumentException), which risky programs seldom reach.
                    let! v = Gen.frequency [ 4, Gen.choose (-3, 3) |> Gen.map VConst; 4, Gen.choose (1, 3) |> Gen.map VIncr; 1, Gen.constant VWrongShape ]
                    let! g = getWith n
                    return [ g; Put(n, v) ]
                else
                    let! v = genValue
                    return [ Put(n, v) ]
             }
          2, genFilter |> Gen.map (fun f -> [ GetM f ])
          2, Gen.map2 (fun f d -> [ PutM(f, d) ]) genFilter (Gen.choose (1, 3))
          2, Gen.choose (1, 4) |> Gen.map (fun k -> [ Rng k ])
          2, gen {
                let! k = Gen.choose (1, 2)
                let! ns = Gen.listOfLength k genName |> Gen.map List.distinct
                let! all = Gen.frequency [ 2, Gen.constant false; 1, Gen.constant true ]
                if safe then
                    let! gets = Gen.collectToList getWith ns
                    let! t = Gen.frequency [ 3, Gen.elements ns |> Gen.map GKey; 1, Gen.constant GSelf ]
                    // A gradient with respect to the whole scope must read all of it.
                    let all = all || t = GSelf
                    return gets @ [ Grad(ns, t, all) ]
                else
                    let! t = Gen.frequency [ 3, genName |> Gen.map GKey; 1, Gen.constant GSelf ]
                    return [ Grad(ns, t, all) ]
             } ]
    if depth <= 0 then
        Gen.frequency leaves
    else
        let body (k: int) = Gen.listOfLength k (genStep safe (depth - 1)) |> Gen.map List.concat
        let scope =
            gen {
                let! n = Gen.elements scopeNames
                let! k = Gen.choose (0, 4)
                let! body = body k
                return [ Scope(n, body) ]
            }
        let local =
            gen {
                let! n = Gen.elements localNames
                let! k = Gen.choose (0, 3)
                let! body = Gen.listOfLength k (genFree safe (depth - 1)) |> Gen.map List.concat
                return [ Local(n, body) ]
            }
        let loop =
            gen {
                let! steps = Gen.choose (1, 3)
                let! reverse = Gen.elements [ true; false ]
                let! k = Gen.choose (0, 2)
                let! body = body k
                return [ Loop(steps, reverse, body) ]
            }
        let repeat =
            gen {
                let! times = Gen.choose (0, 3)
                let! k = Gen.choose (0, 2)
                let! body = body k
                return [ While(times, body) ]
            }
        let branch =
            gen {
                let! pred = Gen.elements [ true; false ]
                let! a = Gen.choose (0, 2) |> Gen.bind body
                let! b = Gen.choose (0, 2) |> Gen.bind body
                return [ Cond(pred, a, b) ]
            }
        Gen.frequency ((3, scope) :: (2, local) :: (1, loop) :: (1, repeat) :: (1, branch) :: leaves)

/// One step inside a Local scope, where entries are read by relative name: Get, Put, Rng, Grad
/// with respect to named entries, submodules (Scope) and nested scopes (Local).
and genFree (safe: bool) (depth: int) : Gen<Instr list> =
    let getWith n = genCtor |> Gen.map (fun c -> Get(n, Some c))
    let leaves =
        [ 5, gen {
                let! n = genName
                let! c =
                    if safe then genCtor |> Gen.map Some
                    else Gen.frequency [ 5, genCtor |> Gen.map Some; 1, Gen.constant None ]
                return [ Get(n, c) ]
             }
          3, gen {
                let! n = genName
                let! v = if safe then Gen.frequency [ 4, Gen.choose (-3, 3) |> Gen.map VConst; 4, Gen.choose (1, 3) |> Gen.map VIncr ] else genValue
                if safe then
                    let! g = getWith n
                    return [ g; Put(n, v) ]
                else return [ Put(n, v) ]
             }
          2, Gen.choose (1, 4) |> Gen.map (fun k -> [ Rng k ])
          2, gen {
                let! k = Gen.choose (1, 2)
                let! ns = Gen.listOfLength k genName |> Gen.map List.distinct
                let! gets = if safe then Gen.collectToList getWith ns else Gen.constant []
                let! t = if safe then Gen.elements ns else genName
                return gets @ [ Grad(ns, GKey t, false) ]
             } ]
    if depth <= 0 then Gen.frequency leaves
    else
        let nested =
            gen {
                let! n = Gen.elements localNames
                let! k = Gen.choose (0, 3)
                let! body = Gen.listOfLength k (genFree safe (depth - 1)) |> Gen.map List.concat
                return [ Local(n, body) ]
            }
        let sub =
            gen {
                let! n = Gen.elements scopeNames
                let! k = Gen.choose (0, 3)
                let! body = Gen.listOfLength k (genStep safe (depth - 1)) |> Gen.map List.concat
                return [ Scope(n, body) ]
            }
        Gen.frequency ((2, nested) :: (2, sub) :: leaves)

/// A program; safe ones (two in three) mostly succeed with create=true, risky ones often fail.
let genProgram: Gen<Instr list> =
    gen {
        let! safe = Gen.frequency [ 2, Gen.constant true; 1, Gen.constant false ]
        let! k = Gen.choose (1, 8)
        let! steps = Gen.listOfLength k (genStep safe 2)
        return List.concat steps
    }

/// Shrinks a program by removing one instruction, at any depth.
let rec shrinkProgram (prog: Instr list) : seq<Instr list> =
    seq {
        for i in 0 .. prog.Length - 1 do
            yield List.removeAt i prog
        for i in 0 .. prog.Length - 1 do
            match prog.[i] with
            | Scope(n, body) ->
                for b in shrinkProgram body do
                    yield List.updateAt i (Scope(n, b)) prog
            | Local(n, body) ->
                for b in shrinkProgram body do
                    yield List.updateAt i (Local(n, b)) prog
            | Loop(k, r, body) ->
                for b in shrinkProgram body do
                    yield List.updateAt i (Loop(k, r, b)) prog
            | While(k, body) ->
                for b in shrinkProgram body do
                    yield List.updateAt i (While(k, b)) prog
            | Cond(p, a, b) ->
                for a2 in shrinkProgram a do
                    yield List.updateAt i (Cond(p, a2, b)) prog
                for b2 in shrinkProgram b do
                    yield List.updateAt i (Cond(p, a, b2)) prog
            | _ -> ()
    }

// ---------------------------------------------------------------------------------------------
// Interpretation (a): a monadic Nj program built from Prog operations

let anchored (p: string) = Regex(@"\A(?:" + p + ")", RegexOptions.CultureInvariant)

let sums (s: State) : Obs =
    let keys = State.keys s
    let t =
        if keys.IsEmpty then torch.zeros ([| 0L |], dtype = torch.float32)
        else torch.stack (State.toSeq s |> Seq.map (fun (_, t) -> t.sum ()) |> Array.ofSeq, 0L)
    "keys " + String.Join(",", keys), t

let rec pureInstr (instr: Instr) : Nj<Obs list> =
    match instr with
    | Get(n, None) -> Prog.read n |> Prog.map (fun v -> [ "get " + n, v ])
    | Get(n, Some(CConst c)) -> Prog.get n (Prog.delay (fun () -> Prog.ret (constant (shapeOf n) c))) |> Prog.map (fun v -> [ "get " + n, v ])
    | Get(n, Some CRand) ->
        let ctor = nj {
            let! g = Prog.rng
            return torch.randn (shapeOf n, generator = g)
        }
        Prog.get n ctor |> Prog.map (fun v -> [ "get " + n, v ])
    | Put(n, VConst c) -> Prog.delay (fun () -> Prog.put n (constant (shapeOf n) c)) |> Prog.map (fun v -> [ "put " + n, v ])
    | Put(n, VWrongShape) -> Prog.delay (fun () -> Prog.put n (constant wrongShape 7)) |> Prog.map (fun v -> [ "put " + n, v ])
    | Put(n, VIncr c) ->
        nj {
            let! cur = Prog.read n
            let! v = Prog.put n (addc cur c)
            return [ "put " + n, v ]
        }
    | GetM f ->
        Prog.getm (f |> Option.map anchored) |> Prog.map (fun s -> [ sums s ])
    | PutM(f, d) ->
        nj {
            let! s = Prog.getm (f |> Option.map anchored)
            do! Prog.putm (State.map (fun _ t -> addc t d) s)
            return [ "putm " + String.Join(",", State.keys s), torch.zeros (1L) ]
        }
    | Scope(n, body) -> Prog.scope n (pureProgram body)
    | Local(n, body) -> Prog.scope n (pureProgram body)
    | Loop(steps, reverse, body) ->
        let options = { ScanOptions.defaults with Reverse = reverse }
        Prog.scanLength options (int64 steps) (fun (acc: Obs list) _ -> pureProgram body |> Prog.map (fun obs -> acc @ obs, stepOutput obs)) []
        |> Prog.map (fun (acc, ys) -> acc @ [ "scan ys", ys ])
    | While(times, body) ->
        Prog.whileLoop
            (fun (i: int, _: Obs list) -> Prog.ret (i < times))
            (fun (i, acc) -> pureProgram body |> Prog.map (fun obs -> i + 1, acc @ obs))
            (0, [])
        |> Prog.map snd
    | Cond(p, a, b) -> Prog.cond p (pureProgram a) (pureProgram b)
    | Rng k ->
        nj {
            let! g = Prog.rng
            return [ "rng", torch.rand ([| int64 k |], generator = g) ]
        }
    | Grad(names, target, all) ->
        nj {
            let! path = Prog.path
            let t =
                match target with
                | GKey n -> Target.Key(Key.join path n)
                | GSelf -> Target.Key path
            let loss = nj {
                let mutable acc = torch.zeros ([||], dtype = torch.float32)
                for n in names do
                    let! v = Prog.read n
                    acc <- acc.add (v.square().sum ())
                if all then
                    let! s = Prog.getm None
                    for _, v in State.toSeq s do
                        acc <- acc.add (v.square().sum ())
                return acc
            }
            let! l, ps, gs = Prog.grad loss [ t ]
            return gradObs l ps gs
        }

/// What a scan step outputs: the sums of its observations, stacked (all steps observe alike).
and stepOutput (obs: Obs list) : torch.Tensor =
    if obs.IsEmpty then torch.zeros ([| 0L |], dtype = torch.float32)
    else torch.stack (obs |> List.map (fun (_, t) -> t.detach().sum().to_type torch.float32) |> Array.ofList, 0L)

and gradObs (l: torch.Tensor) (ps: State) (gs: State) : Obs list =
    let pk, pt = sums ps
    let gk, gt = sums gs
    [ "loss", l; "params " + pk, pt; "grads " + gk, gt ]

and pureProgram (instrs: Instr list) : Nj<Obs list> =
    instrs
    |> List.fold (fun acc i -> acc |> Prog.bind (fun xs -> pureInstr i |> Prog.map (fun ys -> xs @ ys))) (Prog.ret [])

/// The whole program as a top-level module named "m" would run it.
let pureTop (instrs: Instr list) : Nj<Obs list> = Prog.scope "m" (pureProgram instrs)

// ---------------------------------------------------------------------------------------------
// Interpretation (b): impure code on a tree of modules

/// A generic module that runs instructions with this.Get/Put/GetM/PutM, submodules, Nj.rng()
/// and Nj.grad.
[<AllowNullLiteral>]
type ProgModule(name: string) =
    inherit Module(name)

    member this.Run(instrs: Instr list, log: ResizeArray<Obs>) : unit =
        for i in instrs do
            this.Step(i, log)

    member this.Step(instr: Instr, log: ResizeArray<Obs>) : unit =
        match instr with
        | Get(n, None) -> log.Add("get " + n, this.Get n)
        | Get(n, Some(CConst c)) -> log.Add("get " + n, this.Get(n, fun () -> constant (shapeOf n) c))
        | Get(n, Some CRand) -> log.Add("get " + n, this.Value(n, fun () -> torch.randn (shapeOf n, generator = Nj.rng ())))
        | Put(n, VConst c) -> log.Add("put " + n, this.Put(n, constant (shapeOf n) c))
        | Put(n, VWrongShape) -> log.Add("put " + n, this.Put(n, constant wrongShape 7))
        | Put(n, VIncr c) ->
            let cur = this.Read n
            log.Add("put " + n, this.Put(n, addc cur c))
        | GetM None -> log.Add(sums (this.GetM()))
        | GetM(Some f) -> log.Add(sums (this.GetM f))
        | PutM(f, d) ->
            let s = match f with None -> this.GetM() | Some f -> this.GetM f
            this.PutM(State.map (fun _ t -> addc t d) s)
            log.Add("putm " + String.Join(",", State.keys s), torch.zeros (1L))
        | Scope(n, body) -> this.Sub(n, fun () -> ProgModule(null)).Run(body, log)
        | Local(n, body) -> this.Scoped(n, fun () -> this.RunFree(body, log))
        | Loop(steps, reverse, body) ->
            let options = { ScanOptions.defaults with Reverse = reverse }
            let acc, ys =
                Nj.scanLength options (int64 steps) (fun (acc: Obs list) _ -> let obs = this.Collect body in acc @ obs, stepOutput obs) []
            log.AddRange acc
            log.Add("scan ys", ys)
        | While(times, body) ->
            let _, acc = Nj.whileLoop (fun (i: int, _: Obs list) -> i < times) (fun (i, acc) -> i + 1, acc @ this.Collect body) (0, [])
            log.AddRange acc
        | Cond(p, a, b) -> log.AddRange(Nj.cond p (fun () -> this.Collect a) (fun () -> this.Collect b) ())
        | Rng k -> log.Add("rng", torch.rand ([| int64 k |], generator = Nj.rng ()))
        | Grad(names, target, all) ->
            let t =
                match target with
                | GKey n -> Target.Key(this.Path + "/" + n)
                | GSelf -> Target.Module this
            let loss () =
                let mutable acc = torch.zeros ([||], dtype = torch.float32)
                for n in names do
                    acc <- acc.add ((this.Get n).square().sum ())
                if all then
                    for _, v in State.toSeq (this.GetM()) do
                        acc <- acc.add (v.square().sum ())
                acc
            let l, ps, gs = Nj.grad loss [ t ] ()
            log.AddRange(gradObs l ps gs)

    /// Runs instructions and returns their observations (for loop and branch bodies).
    member this.Collect(instrs: Instr list) : Obs list =
        let log = ResizeArray()
        this.Run(instrs, log)
        List.ofSeq log

    /// Runs instructions inside a name scope of this module: entries by relative name through
    /// Nj.get/Nj.read/Nj.put, nested scopes through Nj.scope, submodules through Sub (which lands
    /// under the scope).
    member this.RunFree(instrs: Instr list, log: ResizeArray<Obs>) : unit =
        for i in instrs do
            match i with
            | Get(n, None) -> log.Add("get " + n, Nj.read n)
            | Get(n, Some(CConst c)) -> log.Add("get " + n, Nj.get n (fun () -> constant (shapeOf n) c))
            | Get(n, Some CRand) -> log.Add("get " + n, Nj.get n (fun () -> torch.randn (shapeOf n, generator = Nj.rng ())))
            | Put(n, VConst c) -> log.Add("put " + n, Nj.put n (constant (shapeOf n) c))
            | Put(n, VWrongShape) -> log.Add("put " + n, Nj.put n (constant wrongShape 7))
            | Put(n, VIncr c) ->
                let cur = Nj.read n
                log.Add("put " + n, Nj.put n (addc cur c))
            | Rng k -> log.Add("rng", torch.rand ([| int64 k |], generator = Nj.rng ()))
            | Grad(names, GKey t, false) ->
                let target = Target.Key(Key.join (Nj.currentScope ()) t)
                let loss () =
                    let mutable acc = torch.zeros ([||], dtype = torch.float32)
                    for n in names do
                        acc <- acc.add ((Nj.read n).square().sum ())
                    acc
                let l, ps, gs = Nj.grad loss [ target ] ()
                log.AddRange(gradObs l ps gs)
            | Local(n, body) -> Nj.scope n (fun () -> this.RunFree(body, log))
            | Scope(n, body) -> this.Sub(n, fun () -> ProgModule(null)).Run(body, log)
            | other -> failwithf "not generated inside a Local scope: %A" other

/// The impure function for a program: runs it on the module tree and returns the observations.
let impureFn (root: ProgModule) (instrs: Instr list) : unit -> Obs list =
    fun () ->
        let log = ResizeArray()
        root.Run(instrs, log)
        List.ofSeq log

// ---------------------------------------------------------------------------------------------
// Comparing outcomes

let expectSameObs (actual: Obs list) (expected: Obs list) (msg: string) =
    Expect.equal (List.map fst actual) (List.map fst expected) (msg + ": observation labels")
    List.zip actual expected
    |> List.iteri (fun i ((la, ta), (_, te)) ->
        Expect.isFalse ta.IsInvalid (sprintf "%s: observation %d (%s) was disposed" msg i la)
        expectIdentical ta te (sprintf "%s: observation %d (%s)" msg i la))

let expectSameOutcome (actual: Outcome<Obs list>) (expected: Outcome<Obs list>) (msg: string) =
    expectSameObs actual.Output expected.Output msg
    expectSameState actual.State expected.State (msg + ": state")
    Expect.equal actual.Read expected.Read (msg + ": Read")
    Expect.equal actual.Modified expected.Modified (msg + ": Modified")
    Expect.equal actual.Created expected.Created (msg + ": Created")

/// Counters, to show that the generators reach both outcomes.
type Tally() =
    let mutable ok = 0
    let mutable failed = 0
    let kinds = Collections.Concurrent.ConcurrentDictionary<string, int>()
    let composites = Collections.Concurrent.ConcurrentDictionary<string, int>()
    member _.Ok() = Threading.Interlocked.Increment(&ok) |> ignore
    member _.Failed() = Threading.Interlocked.Increment(&failed) |> ignore
    member _.Error(e: exn) = kinds.AddOrUpdate(e.GetType().Name, 1, fun _ n -> n + 1) |> ignore
    member _.Counts = ok, failed
    member _.Kinds = kinds.Keys |> Set.ofSeq
    /// Records the composite instructions of a program that ran successfully.
    member this.Succeeded(program: Instr list) =
        let rec walk (instrs: Instr list) =
            for i in instrs do
                let note (k: string) = composites.AddOrUpdate(k, 1, fun _ n -> n + 1) |> ignore
                match i with
                | Scope(_, b) -> note "Scope"; walk b
                | Local(_, b) -> note "Local"; walk b
                | Loop(_, true, b) -> note "Loop reversed"; walk b
                | Loop(_, false, b) -> note "Loop"; walk b
                | While(_, b) -> note "While"; walk b
                | Cond(_, a, b) -> note "Cond"; walk a; walk b
                | _ -> ()
        walk program
    /// How many successful programs held each composite instruction.
    member _.Composite(kind: string) = match composites.TryGetValue kind with | true, n -> n | _ -> 0

/// Either both failed with the same exception type and message, or both succeeded with the
/// same outcome. Returns the common outcome (or None when both failed).
let expectAgree (tally: Tally) (pureR: Result<Outcome<Obs list>, exn>) (impureR: Result<Outcome<Obs list>, exn>) (msg: string) =
    match pureR, impureR with
    | Ok p, Ok i ->
        expectSameOutcome i p msg
        for k in State.keys p.State do
            Expect.isFalse p.State.[k].requires_grad (sprintf "%s: entry %s still requires grad" msg k)
        Some(p, i)
    | Error p, Error i ->
        tally.Error p
        Expect.equal (i.GetType()) (p.GetType()) (sprintf "%s: exception types (pure: %s)" msg p.Message)
        Expect.equal i.Message p.Message (msg + ": exception messages")
        None
    | Ok _, Error i -> failtestf "%s: impure threw %s (%s) but the monadic program succeeded" msg (i.GetType().Name) i.Message
    | Error p, Ok _ -> failtestf "%s: monadic program threw %s (%s) but impure code succeeded" msg (p.GetType().Name) p.Message

let runPure (opts: Options) (instrs: Instr list) (state: State) = attempt (fun () -> Purify.run opts (pureTop instrs) state)

let runImpure (opts: Options) (root: ProgModule) (instrs: Instr list) (state: State) =
    attempt (fun () -> Nj.purifyTracked opts (impureFn root instrs) state ())

// =============================================================================================
// Generated cases

/// Flags for a second call: create off, modify/ignore free.
type SecondFlags = { Modify: bool; Ignore: bool }

type EquivCase = { Program: Instr list; Seed: int64; Second: SecondFlags; Stream: bool }

let genSeed = Gen.choose (0, 1_000_000) |> Gen.map int64

let genEquiv =
    gen {
        let! p = genProgram
        let! seed = genSeed
        let! m = Gen.frequency [ 3, Gen.constant true; 1, Gen.constant false ]
        let! ig = Gen.frequency [ 3, Gen.constant false; 1, Gen.constant true ]
        let! stream = Gen.frequency [ 3, Gen.constant false; 1, Gen.constant true ]
        return { Program = p; Seed = seed; Second = { Modify = m; Ignore = ig }; Stream = stream }
    }

let arbEquiv =
    Arb.fromGenShrink (genEquiv, fun c -> shrinkProgram c.Program |> Seq.map (fun p -> { c with Program = p }))

// ---------------------------------------------------------------------------------------------
// Property 1: pure/impure equivalence

let equivalence (tally: Tally) (c: EquivCase) : unit =
    // With a random stream in the state (Options.withRngStream) the first call creates it and
    // the second draws from it and advances it, in both interpretations alike.
    let stream (o: Options) = if c.Stream then Options.withRngStream "rng" o else o
    let optsOf seed create modify ignore = optsOf seed create modify ignore |> stream
    let opts1 = optsOf c.Seed true true false
    let root = ProgModule "m"
    let p1 = runPure opts1 c.Program State.empty
    let i1 = runImpure opts1 root c.Program State.empty
    match expectAgree tally p1 i1 "first call (create=true)" with
    | None -> tally.Failed()
    | Some(p, i) ->
        tally.Ok()
        tally.Succeeded c.Program
        let opts2 = optsOf c.Seed false c.Second.Modify c.Second.Ignore
        let p2 = runPure opts2 c.Program p.State
        // The same module tree runs again (as a model would), on the impure side's own state.
        let i2 = runImpure opts2 root c.Program i.State
        match expectAgree tally p2 i2 (sprintf "second call (create=false, %A)" c.Second) with
        | None -> tally.Failed()
        | Some _ -> tally.Ok()

// ---------------------------------------------------------------------------------------------
// Property 2: purity

type PurityCase = { Init: Instr list; Program: Instr list; Seed: int64; Create: bool; Modify: bool; Ignore: bool; Impure: bool }

let genPurity =
    gen {
        let! p = genProgram
        let! other = genProgram
        let! same = Gen.elements [ true; false ]
        let init = if same then p else other
        let! seed = genSeed
        let! c = Gen.elements [ true; false ]
        let! m = Gen.elements [ true; false ]
        let! i = Gen.elements [ true; false ]
        let! impure = Gen.elements [ true; false ]
        return { Init = init; Program = p; Seed = seed; Create = c; Modify = m; Ignore = i; Impure = impure }
    }

let arbPurity =
    Arb.fromGenShrink (genPurity, fun c -> shrinkProgram c.Program |> Seq.map (fun p -> { c with Program = p }))

/// A starting state: what init of a random program makes (empty when that program fails),
/// plus one entry that no program touches.
let startState (init: Instr list) (seed: int64) : State =
    let root = ProgModule "m"
    let s = match attempt (fun () -> Nj.init seed (impureFn root init) State.empty ()) with Ok s -> s | Error _ -> State.empty
    s |> State.add "other/x" (constant [| 2L |] 5)

let purity (tally: Tally) (c: PurityCase) : unit =
    let state = startState c.Init c.Seed
    let snap = snapshot state
    let opts = optsOf c.Seed c.Create c.Modify c.Ignore
    let call () =
        if c.Impure then runImpure opts (ProgModule "m") c.Program state
        else runPure opts c.Program state
    let r1 = call ()
    expectUnchanged state snap "after the first call"
    let r2 = call ()
    expectUnchanged state snap "after the second call"
    match r1, r2 with
    | Ok a, Ok b ->
        tally.Ok()
        expectSameOutcome b a "second call versus first"
        // Entries the call did not write are shared, not copied.
        for k in State.keys state do
            if not (a.Modified.Contains k) then
                Expect.isTrue (obj.ReferenceEquals(a.State.[k], state.[k])) (sprintf "untouched entry %s was copied" k)
    | Error a, Error b ->
        tally.Failed()
        Expect.equal (b.GetType()) (a.GetType()) "both calls fail the same way"
        Expect.equal b.Message a.Message "both calls fail with the same message"
    | _ -> failtestf "one call failed and the other did not: %A / %A" (Result.map ignore r1) (Result.map ignore r2)

// ---------------------------------------------------------------------------------------------
// Property 3: init

/// The same program with every constant changed: it would create the same keys differently.
/// The same program with the instructions inside every body (scopes, loops, branches) mapped too.
let rec mapDeep (f: Instr -> Instr) (free: bool) (instrs: Instr list) : Instr list =
    instrs
    |> List.map (fun i ->
        match f i with
        | Scope(n, body) -> Scope(n, mapDeep f false body)
        | Local(n, body) -> Local(n, mapDeep f true body)
        | Loop(k, r, body) -> Loop(k, r, mapDeep f free body)
        | While(k, body) -> While(k, mapDeep f free body)
        | Cond(p, a, b) -> Cond(p, mapDeep f free a, mapDeep f free b)
        | other -> other)

let rec perturb (instrs: Instr list) : Instr list =
    instrs
    |> mapDeep
        (function
        | Get(n, Some(CConst c)) -> Get(n, Some(CConst(c + 10)))
        | Get(n, Some CRand) -> Get(n, Some(CConst 42))
        | Put(n, VConst c) -> Put(n, VConst(c + 10))
        | i -> i)
        false

/// The same program with every gradient's loss reading its whole scope: otherwise a gradient
/// with respect to a scope fails once entries it does not read exist (the program depends on the
/// state), which would make init f (init f empty) fail for reasons unrelated to init. Inside
/// Local scopes gradients target single keys and stay as they are.
let rec readAll (instrs: Instr list) : Instr list =
    instrs
    |> List.map (function
        | Grad(ns, t, _) -> Grad(ns, t, true)
        | Scope(n, body) -> Scope(n, readAll body)
        | Loop(k, r, body) -> Loop(k, r, readAll body)
        | While(k, body) -> While(k, readAll body)
        | Cond(p, a, b) -> Cond(p, readAll a, readAll b)
        | i -> i)

let rec usesRand (instrs: Instr list) : bool =
    instrs
    |> List.exists (function
        | Get(_, Some CRand) -> true
        | Scope(_, body) | Local(_, body) | Loop(_, _, body) | While(_, body) -> usesRand body
        | Cond(_, a, b) -> usesRand a || usesRand b
        | _ -> false)

type InitCase = { F: Instr list; G: Instr list; SeedF: int64; SeedG: int64 }

let genInit =
    gen {
        let! f = genProgram
        let! other = genProgram
        let! perturbed = Gen.elements [ true; false ]
        let! sf = genSeed
        let! sg = genSeed
        let f = readAll f
        return { F = f; G = (if perturbed then perturb f else readAll other); SeedF = sf; SeedG = sg }
    }

let arbInit = Arb.fromGen genInit

let initProps (tally: Tally) (c: InitCase) : unit =
    let rootF = ProgModule "m"
    let rootG = ProgModule "m"
    let initF = Nj.init c.SeedF (impureFn rootF c.F)
    let initG = Nj.init c.SeedG (impureFn rootG c.G)
    match attempt (fun () -> initF State.empty ()) with
    | Error e ->
        // init from scratch may fail only for programs that read or differentiate missing keys.
        tally.Failed()
        Expect.isTrue (e :? KeyNotFoundException || e :? InvalidOperationException || e :? ArgumentException) (sprintf "unexpected %O" e)
    | Ok s1 ->
        tally.Ok()
        // Idempotence: a second init changes nothing, not even the tensor objects.
        let snap = snapshot s1
        let s2 = initF s1 ()
        expectUnchanged s2 snap "init f (init f empty)"
        expectUnchanged s1 snap "the input of the second init"
        // The monadic program inits to the same state as the impure one.
        let pureS1 = Purify.init (Options.seeded c.SeedF) (fun () -> pureTop c.F) State.empty ()
        expectSameState pureS1 s1 "monadic init versus impure init"
        // Composition.
        match attempt (fun () -> initG s1 ()), attempt (fun () -> initG State.empty ()) with
        | Ok s12, Ok sG ->
            let expectedKeys = Set.union (Set.ofList (State.keys s1)) (Set.ofList (State.keys sG))
            Expect.equal (Set.ofList (State.keys s12)) expectedKeys "init g after init f holds the union of keys"
            for k in State.keys s1 do
                Expect.isTrue (obj.ReferenceEquals(s12.[k], s1.[k])) (sprintf "entry %s created by f was replaced by init g" k)
            // Entries only g creates get the same values as when g runs alone, unless g draws
            // random numbers: Gets of entries f already made draw nothing, so later draws shift.
            if not (usesRand c.G) then
                for k in State.keys sG do
                    if not (State.containsKey k s1) then
                        expectIdentical s12.[k] sG.[k] (sprintf "entry %s created by g alone" k)
        | Error e, Ok _ -> failtestf "init g succeeds on the empty state but fails after init f with %O" e
        | Ok _, Error _ -> () // g reads something only f creates.
        | Error _, Error _ -> ()

// ---------------------------------------------------------------------------------------------
// Property 4: flags

type Op =
    | ReadX
    | WriteY
    | CreateZ

type FlagCase = { Create: bool; Modify: bool; Ignore: bool; Order: Op list; X: int; Y: int; NewY: int; Z: int; Impure: bool }

let genFlags =
    gen {
        let! c = Gen.elements [ true; false ]
        let! m = Gen.elements [ true; false ]
        let! i = Gen.elements [ true; false ]
        let! order = Gen.elements [ for a in [ ReadX; WriteY; CreateZ ] do
                                      for b in [ ReadX; WriteY; CreateZ ] do
                                          for d in [ ReadX; WriteY; CreateZ ] do
                                              if a <> b && b <> d && a <> d then [ a; b; d ] ]
        let! x = Gen.choose (-9, 9)
        let! y = Gen.choose (-9, 9)
        let! ny = Gen.choose (10, 19)
        let! z = Gen.choose (-9, 9)
        let! impure = Gen.elements [ true; false ]
        return { Create = c; Modify = m; Ignore = i; Order = order; X = x; Y = y; NewY = ny; Z = z; Impure = impure }
    }

let flags (c: FlagCase) : unit =
    let state = State.ofSeq [ "m/x", constant [| 2L |] c.X; "m/y", constant [| 3L |] c.Y ]
    let snap = snapshot state
    let opts = optsOf 0L c.Create c.Modify c.Ignore
    let outcome =
        if c.Impure then
            let m = ProgModule "m"
            let step op =
                match op with
                | ReadX -> m.Read "x"
                | WriteY -> m.Put("y", constant [| 3L |] c.NewY)
                | CreateZ -> m.Get("z", fun () -> constant [| 4L |] c.Z)
            attempt (fun () -> Nj.purifyTracked opts (fun () -> c.Order |> List.map step) state ())
        else
            let step op =
                match op with
                | ReadX -> Prog.read "x"
                | WriteY -> Prog.delay (fun () -> Prog.put "y" (constant [| 3L |] c.NewY))
                | CreateZ -> Prog.get "z" (Prog.delay (fun () -> Prog.ret (constant [| 4L |] c.Z)))
            let program =
                c.Order |> List.fold (fun acc op -> acc |> Prog.bind (fun xs -> step op |> Prog.map (fun v -> xs @ [ v ]))) (Prog.ret [])
            attempt (fun () -> Purify.run opts (Prog.scope "m" program) state)
    expectUnchanged state snap "input state"
    let createFails = not c.Create
    let writeFails = not c.Ignore && not c.Modify
    let firstFailing =
        c.Order |> List.tryFind (function CreateZ -> createFails | WriteY -> writeFails | ReadX -> false)
    match firstFailing, outcome with
    | Some op, Error e ->
        Expect.equal (e.GetType()) typeof<InvalidOperationException> (sprintf "failure of %A: %s" op e.Message)
        let key = match op with CreateZ -> "m/z" | _ -> "m/y"
        Expect.stringContains e.Message key "the error names the key"
        Expect.stringContains e.Message (sprintf "create=%b, modify=%b, ignore=%b" c.Create c.Modify c.Ignore) "the error names the flags"
    | Some op, Ok o -> failtestf "expected %A to fail with %A, but the call succeeded with state %O" op c o.State
    | None, Error e -> failtestf "expected success with %A, got %O" c e
    | None, Ok o ->
        Expect.equal (State.keys o.State) [ "m/x"; "m/y"; "m/z" ] "keys after the call"
        Expect.isTrue (obj.ReferenceEquals(o.State.["m/x"], state.["m/x"])) "the read entry is untouched"
        if c.Ignore then
            Expect.isTrue (obj.ReferenceEquals(o.State.["m/y"], state.["m/y"])) "ignore drops the write"
        else
            expectIdentical o.State.["m/y"] (constant [| 3L |] c.NewY) "the write lands"
        expectIdentical o.State.["m/z"] (constant [| 4L |] c.Z) "the created entry"
        let outputs = o.Output
        let at op = outputs.[List.findIndex ((=) op) c.Order]
        expectIdentical (at ReadX) (constant [| 2L |] c.X) "read returns the entry"
        expectIdentical (at WriteY) (constant [| 3L |] c.NewY) "put returns the value written (even when ignored)"
        expectIdentical (at CreateZ) (constant [| 4L |] c.Z) "get returns the created entry"
        Expect.equal o.Read (set [ "m/x"; "m/z" ]) "Read"
        Expect.equal o.Modified (set [ "m/y" ]) "Modified (listed even when the write is ignored)"
        Expect.equal o.Created (set [ "m/z" ]) "Created"

// ---------------------------------------------------------------------------------------------
// Property 5: rng

/// Two draws in one call, through Nj.rng() (impure) or Prog.rng (monadic).
let drawsImpure (seed: int64 option) (n: int) : torch.Tensor * torch.Tensor =
    let opts = { Options.defaults with Seed = seed }
    let f () =
        let a = torch.randn ([| int64 n |], generator = Nj.rng ())
        let b = torch.randn ([| int64 n |], generator = Nj.rng ())
        a, b
    snd (Nj.purifyWith opts f State.empty ())

let drawsPure (seed: int64 option) (n: int) : torch.Tensor * torch.Tensor =
    let opts = { Options.defaults with Seed = seed }
    let program = nj {
        let! g1 = Prog.rng
        let a = torch.randn ([| int64 n |], generator = g1)
        let! g2 = Prog.rng
        let b = torch.randn ([| int64 n |], generator = g2)
        return a, b
    }
    (Purify.run opts program State.empty).Output

type RngCase = { Seed: int64; Other: int64; N: int }

let genRng =
    gen {
        let! s = Gen.choose (Int32.MinValue, Int32.MaxValue) |> Gen.map int64
        let! hi = Gen.choose (-1000, 1000) |> Gen.map int64
        let! o = Gen.choose (Int32.MinValue, Int32.MaxValue) |> Gen.map int64
        let! n = Gen.choose (4, 16)
        let seed = s ^^^ (hi <<< 32)
        return { Seed = seed; Other = (if o = seed then o + 1L else o); N = n }
    }

let rng (c: RngCase) : unit =
    let a1, b1 = drawsImpure (Some c.Seed) c.N
    // The global torch generator must not matter.
    torch.rand (3L) |> ignore
    let a2, b2 = drawsImpure (Some c.Seed) c.N
    expectIdentical a2 a1 "same seed, first draw"
    expectIdentical b2 b1 "same seed, second draw"
    let pa, pb = drawsPure (Some c.Seed) c.N
    expectIdentical pa a1 "Prog.rng and Nj.rng agree, first draw"
    expectIdentical pb b1 "Prog.rng and Nj.rng agree, second draw"
    Expect.isFalse (identical a1 b1) "two draws in one call differ"
    let oa, ob = drawsImpure (Some c.Other) c.N
    Expect.isFalse (identical oa a1) (sprintf "seeds %d and %d give the same first draw" c.Seed c.Other)
    Expect.isFalse (identical ob b1) (sprintf "seeds %d and %d give the same second draw" c.Seed c.Other)
    for f in [ drawsImpure; drawsPure ] do
        try
            f None c.N |> ignore
            failtest "rng without a seed should fail"
        with
        | :? InvalidOperationException as e -> Expect.stringContains e.Message "seed" "the error mentions the seed"

// ---------------------------------------------------------------------------------------------
// Output tensors survive the call (Purify.run frees everything else it allocated)

/// Containers that Survivors documents it walks (tensors, tuples, collections, dictionaries,
/// records, unions), applied to a boxed value.
type Wrap =
    | WList
    | WArray
    | WOption
    | WTuple
    | WResizeArray
    | WDictionary
    | WRecord

type Boxed = { Inner: obj; Tag: int }

let wrap (w: Wrap) (o: obj) : obj =
    match w with
    | WList -> box [ o; box 1 ]
    | WArray -> box [| o |]
    | WOption -> box (Some o)
    | WTuple -> box (1, o, "x")
    | WResizeArray -> box (ResizeArray [ o ])
    | WDictionary -> box (dict [ 1, o ] |> Dictionary)
    | WRecord -> box { Inner = o; Tag = 3 }

let survives (wraps: Wrap list) : unit =
    let made = ref null
    let f () =
        let t = torch.ones (3L)
        made.Value <- t
        wraps |> List.fold (fun o w -> wrap w o) (box t)
    Nj.purify f State.empty () |> ignore
    Expect.isFalse made.Value.IsInvalid (sprintf "the output tensor inside %A was freed" wraps)
    expectIdentical made.Value (torch.ones (3L)) "the output tensor keeps its values"

// =============================================================================================

[<Tests>]
let tests =
    testList "properties" [
        testCase "pure and impure interpretations agree" <| fun () ->
            let tally = Tally()
            check 300 "equivalence" (Prop.forAll arbEquiv (equivalence tally))
            let ok, failed = tally.Counts
            // The generator must exercise both successful and failing calls.
            Expect.isGreaterThan ok 100 "enough successful calls"
            Expect.isGreaterThan failed 30 "enough failing calls"
            let expectedKinds = set [ "KeyNotFoundException"; "InvalidOperationException"; "ArgumentException" ]
            Expect.isTrue (Set.isSubset expectedKinds tally.Kinds) (sprintf "the failures cover missing keys, flags and mismatches: %A" tally.Kinds)
            for kind in [ "Scope"; "Local"; "Loop"; "Loop reversed"; "While"; "Cond" ] do
                Expect.isGreaterThan (tally.Composite kind) 5 (sprintf "successful programs exercise %s" kind)

        testCase "purified calls leave their input alone and are deterministic" <| fun () ->
            let tally = Tally()
            check 200 "purity" (Prop.forAll arbPurity (purity tally))
            let ok, failed = tally.Counts
            Expect.isGreaterThan ok 40 "enough successful calls"
            Expect.isGreaterThan failed 40 "enough failing calls"

        testCase "init is idempotent and inits compose" <| fun () ->
            let tally = Tally()
            check 200 "init" (Prop.forAll arbInit (initProps tally))
            let ok, _ = tally.Counts
            Expect.isGreaterThan ok 100 "enough successful inits"

        testCase "flags follow ninjax's rules" <| fun () ->
            check 300 "flags" (Prop.forAll (Arb.fromGen genFlags) flags)

        testCase "all eight flag combinations, both interpretations" <| fun () ->
            for c in [ true; false ] do
                for m in [ true; false ] do
                    for i in [ true; false ] do
                        for impure in [ true; false ] do
                            flags { Create = c; Modify = m; Ignore = i; Order = [ ReadX; WriteY; CreateZ ]; X = 1; Y = 2; NewY = 11; Z = 3; Impure = impure }

        // Library bug (Core/Gradients.fs, resolveTarget, Target.Module case): a module's keys lie under
        // "Path/", but Key.isUnder m.Path also matches the key equal to m.Path, which belongs to
        // the parent module (its entry named like the submodule). ninjax's grad uses
        // mod.getm(), whose prefix is path + "/". Pending until fixed.
        testCase "Target.Module selects only the module's own keys" <| fun () ->
            let parent = ProgModule "m"
            let child = parent.Sub("a", fun () -> ProgModule(null))
            let f () =
                parent.Get("a", fun () -> constant [| 2L |] 1) |> ignore
                child.Get("b", fun () -> constant [| 3L |] 2) |> ignore
                let _, ps, _ = Nj.grad (fun () -> (child.Get "b").square().sum ()) [ Target.Module child ] ()
                State.keys ps
            let _, keys = Nj.purifyWith (Options.seeded 0L |> Options.withCreate true) f State.empty ()
            Expect.equal keys [ "m/a/b" ] "the gradient is taken with respect to the child's keys only"

        testCase "output tensors survive the call, however they are wrapped" <| fun () ->
            let genWraps =
                Gen.choose (1, 4)
                |> Gen.bind (fun k -> Gen.listOfLength k (Gen.elements [ WList; WArray; WOption; WTuple; WResizeArray; WDictionary; WRecord ]))
            check 100 "survivors" (Prop.forAll (Arb.fromGen genWraps) survives)

        // Library bug (Core/Purify.fs, Survivors.collect): collections are walked only when they are
        // ICollection, IReadOnlyCollection<obj> or IReadOnlyCollection<KeyValuePair<string, Tensor>>.
        // Interface covariance does not apply to value-type elements, so a list of struct tuples or
        // of voptions, a Map<int, Tensor>, a Map<string, anything but Tensor> (Tensor list, Tensor
        // option, obj), a readOnlyDict or a list of KeyValuePairs is not walked and the tensors in
        // it are disposed when the call returns. Pending until fixed.
        testCase "output tensors inside collections of value types survive" <| fun () ->
            let check name (f: unit -> 'T) (get: 'T -> torch.Tensor) =
                let _, out = Nj.purify f State.empty ()
                Expect.isFalse (get out).IsInvalid (name + ": the output tensor was freed")
            check "struct tuple list" (fun () -> [ struct (1, torch.ones 2L) ]) (fun l -> let struct (_, t) = List.head l in t)
            check "voption list" (fun () -> [ ValueSome(torch.ones 2L) ]) (fun l -> l.Head.Value)
            check "Map<int, Tensor>" (fun () -> Map [ 1, torch.ones 2L ]) (fun m -> m.[1])
            check "Map<string, Tensor list>" (fun () -> Map [ "x", [ torch.ones 2L ] ]) (fun m -> m.["x"].Head)
            check "Map<string, Tensor option>" (fun () -> Map [ "x", Some(torch.ones 2L) ]) (fun m -> m.["x"].Value)
            check "readOnlyDict" (fun () -> readOnlyDict [ 1, torch.ones 2L ]) (fun d -> d.[1])
            check "KeyValuePair list" (fun () -> [ KeyValuePair(1, torch.ones 2L) ]) (fun l -> l.Head.Value)

        // Surprising behaviour (Core/Monad.fs, mix): the generator seed is SplitMix64 of
        // seed + (draw + 1) * gamma, so seed s + gamma replays seed s's stream shifted by one
        // draw (the streams overlap). Pending as a design note rather than a hard bug.
        testCase "seeds differing by the SplitMix gamma give unrelated streams" <| fun () ->
            let gamma = int64 0x9E3779B97F4A7C15UL
            let a1, _ = drawsImpure (Some(12345L + gamma)) 4
            let _, b2 = drawsImpure (Some 12345L) 4
            Expect.isFalse (identical a1 b2) "the first draw of seed s + gamma should differ from the second draw of seed s"

        testCase "rng is a function of the seed" <| fun () ->
            check 200 "rng" (Prop.forAll (Arb.fromGen genRng) rng)
    ]
