module Ninjax.Tests.ModuleTests

open System
open System.Collections.Generic
open Expecto
open TorchSharp
open Ninjax
open Ninjax.Tests.Helpers

/// The tutorial's counting module.
type Counter(name: string) =
    inherit Module(name)
    member this.Count() =
        let c = this.Get("count", fun () -> torch.zeros([||], dtype = torch.int32))
        this.Put("count", c + 1) |> ignore
        this.Get("count").item<int> ()
    member this.Counting() =
        let counter = this.Get("counter", fun () -> torch.zeros([||], dtype = torch.int32))
        this.Put("counter", counter + 1) |> ignore
        let first = this.Get("counter").item<int> ()
        let state = this.GetM()
        let key = this.Path + "/counter"
        this.PutM(State.ofSeq [ key, state.[key] + 1 ])
        let viaGetM = this.GetM().[key].item<int> ()
        first, viaGetM, this.Get("counter").item<int> ()

type Leaf(size: int, ?name: string) =
    inherit Module(Option.toObj name)
    member this.W = this.Get("w", fun () -> torch.ones(int64 size))

type Branch(?name: string) as this =
    inherit Module(Option.toObj name)
    let left = this.Sub("left", fun () -> Leaf 2)
    let right = this.Sub("right", fun () -> Leaf 3)
    member _.Left = left
    member _.Right = right
    member this.Inline = this.Sub("inline", fun () -> Leaf 1)
    member this.Sum() = left.W.sum() + right.W.sum() + this.Inline.W.sum()

type Tree(name: string) as this =
    inherit Module(name)
    let branch = this.Sub("branch", fun () -> Branch())
    member _.Branch = branch
    member _.Run() = branch.Sum()

type Careless(name: string) =
    inherit Module(name)
    // Wrong on purpose: a submodule constructed directly inside a Sub-built module, without a name.
    let inner = Leaf 1
    member _.Inner = inner

/// ninjax's test_basic: a module constructed by name in a Sub-built module's constructor goes
/// under it (the constructor runs in the module's scope).
type ByName(name: string) =
    inherit Module(name)
    let inner = Leaf(1, "inner")
    member _.Inner = inner

type Hyper(?lr: float, ?name: string) =
    inherit Module(defaultArg name "hyper")
    member val Lr = defaultArg lr 0.01

type Foo(name: string) =
    inherit Module(name)
    member this.Run() =
        let a = this.Get("a", fun () -> full [| 1L |] 1.0f)
        let shared = this.Get("shared", fun () -> full [| 1L |] 10.0f)
        a + shared

type Bar(name: string) =
    inherit Module(name)
    member this.Run(foo: Foo) =
        let b = this.Get("b", fun () -> full [| 1L |] 2.0f)
        let shared = Nj.get (foo.Path + "/shared") (fun () -> full [| 1L |] 20.0f)
        b + shared

type Chain(name: string) as this =
    inherit Module(name)
    let first = this.Sub("first", fun () -> Variable(Func<torch.Tensor>(fun () -> full [| 2L |] 3.0f)))
    let second = this.Sub("second", fun () -> Variable(Func<torch.Tensor>(fun () -> first.Read() * 2.0f)))
    member _.First = first
    member _.Second = second
    member _.Run() = second.Read()

[<Tests>]
let tests =
    testList "modules" [
        testCase "a counter written with Put counts 1, 2, 3 over calls" <| fun () ->
            let counter = Counter "counter"
            let count = Nj.purify counter.Count
            let state = Nj.init 0L counter.Count State.empty ()
            let s1, c1 = count state ()
            let s2, c2 = count s1 ()
            let _, c3 = count s2 ()
            Expect.equal [ c1; c2; c3 ] [ 1; 2; 3 ] "counts"
            Expect.equal (state.["counter/count"].item<int> ()) 0 "init left the counter at zero"

        testCase "the tutorial's counting example: put, putm, get agree" <| fun () ->
            let counter = Counter "c"
            let _, result = Nj.purifyWith creating counter.Counting State.empty ()
            Expect.equal result (1, 2, 2) "1, then 2 through getm and get"

        testCase "submodules from the constructor and inline are scoped under the parent" <| fun () ->
            let tree = Tree "tree"
            Expect.equal tree.Path "tree" "top"
            Expect.equal tree.Branch.Path "tree/branch" "child"
            Expect.equal tree.Branch.Left.Path "tree/branch/left" "grandchild from the child's constructor"
            Expect.equal tree.Branch.Name "branch" "name"
            let state = Nj.init 0L tree.Run State.empty ()
            Expect.equal (State.keys state) [ "tree/branch/inline/w"; "tree/branch/left/w"; "tree/branch/right/w" ] "keys"
            Expect.isTrue (obj.ReferenceEquals(tree.Branch.Inline, tree.Branch.Inline)) "inline submodule is created once"

        testCase "a top-level module needs a name" <| fun () ->
            let msg = throwsWith<ArgumentException> (fun () -> Leaf 1 |> ignore)
            mentions msg [ "Leaf"; "name" ]
            let msg = throwsWith<ArgumentException> (fun () -> Leaf(1, "bad/name") |> ignore)
            mentions msg [ "bad/name" ]

        testCase "a module built inside a Sub without Sub or a name is an error, not a silent top-level module" <| fun () ->
            let parent = Counter "parent"
            let msg = throwsWith<InvalidOperationException> (fun () -> parent.Sub("careless", fun () -> Careless "careless") |> ignore)
            mentions msg [ "Leaf"; "without a name"; "parent/careless"; "Sub" ]
            // With a name it goes under the module being built, as in ninjax.
            let made = parent.Sub("byname", fun () -> ByName "byname")
            Expect.equal made.Inner.Path "parent/byname/inner" "a named module built in a constructor lands under it"

        testCase "Sub's constructor must build the module itself" <| fun () ->
            let parent = Counter "p"
            let elsewhere = Leaf(1, "elsewhere")
            let msg = throwsWith<InvalidOperationException> (fun () -> parent.Sub("x", fun () -> elsewhere) |> ignore)
            mentions msg [ "p/x"; "elsewhere" ]

        testCase "hyperparameters are optional constructor arguments with defaults" <| fun () ->
            Expect.equal (Hyper()).Lr 0.01 "default"
            Expect.equal (Hyper(lr = 0.5)).Lr 0.5 "overridden"

        testCase "state access outside a purified call explains itself" <| fun () ->
            let c = Counter "outside"
            let msg = throwsWith<InvalidOperationException> (fun () -> c.Count() |> ignore)
            mentions msg [ "Nj.purify"; "context" ]

        testCase "inits compose: the union of entries, and values created first are kept" <| fun () ->
            let foo = Foo "foo"
            let bar = Bar "bar"
            let s1 = Nj.init 0L foo.Run State.empty ()
            let s2 = Nj.init 0L bar.Run s1 foo
            Expect.equal (State.keys s2) [ "bar/b"; "foo/a"; "foo/shared" ] "union"
            expectIdentical s2.["foo/shared"] (full [| 1L |] 10.0f) "the first init's value is kept"
            Expect.isTrue (obj.ReferenceEquals(s2.["foo/a"], s1.["foo/a"])) "same tensor object"
            let s3 = Nj.init 0L foo.Run s2 ()
            expectSameState s3 s2 "init is idempotent"

        testCase "a variable's initial value can be read from another" <| fun () ->
            let chain = Chain "chain"
            let state = Nj.init 0L chain.Run State.empty ()
            expectIdentical state.["chain/second/value"] (full [| 2L |] 6.0f) "second = 2 * first"
            let write = Nj.purify (fun (v: torch.Tensor) -> chain.First.Write v |> ignore; chain.First.Read())
            let s2, out = write state (full [| 2L |] 5.0f)
            expectIdentical out (full [| 2L |] 5.0f) "written and read back"
            expectIdentical s2.["chain/first/value"] (full [| 2L |] 5.0f) "stored"

        testCase "Write checks shape; Read needs an existing entry" <| fun () ->
            let chain = Chain "chain2"
            let state = Nj.init 0L chain.Run State.empty ()
            let bad = Nj.purify (fun () -> chain.First.Write(torch.zeros 3L))
            let msg = throwsWith<ArgumentException> (fun () -> bad state () |> ignore)
            mentions msg [ "chain2/first/value"; "[2]"; "[3]" ]
            let missing = Nj.purify (fun () -> chain.Read "nothing")
            let msg = throwsWith<KeyNotFoundException> (fun () -> missing state () |> ignore)
            mentions msg [ "chain2/nothing" ]

        testCase "Values lists a module's entries relative to its path" <| fun () ->
            let tree = Tree "vtree"
            let state = Nj.init 0L tree.Run State.empty ()
            let _, keys = Nj.purify (fun () -> State.keys tree.Branch.Values) state ()
            Expect.equal keys [ "inline/w"; "left/w"; "right/w" ] "relative keys"

        testCase "a purified call inside another needs nested options and cannot loosen flags" <| fun () ->
            let c = Counter "n"
            let inner = Nj.purify c.Count
            let outer = Nj.purifyWith creating (fun () -> inner State.empty ())
            let msg = throwsWith<InvalidOperationException> (fun () -> outer State.empty () |> ignore)
            mentions msg [ "nested" ]
            let innerNested = Nj.purifyWith (Options.defaults |> Options.nested) c.Count
            let ok = Nj.purifyWith creating (fun () -> snd (innerNested State.empty ()))
            Expect.equal (snd (ok State.empty ())) 1 "nested call inherits create=true"
            let loosen = Nj.purifyWith (Options.defaults |> Options.nested |> Options.withCreate true) c.Count
            let strict = Nj.purify (fun () -> loosen State.empty ())
            let msg = throwsWith<InvalidOperationException> (fun () -> strict State.empty () |> ignore)
            mentions msg [ "create=true"; "loosen" ]
    ]
