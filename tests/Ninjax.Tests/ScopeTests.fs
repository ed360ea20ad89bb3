module Ninjax.Tests.ScopeTests

open System
open Expecto
open TorchSharp
open Ninjax
open Ninjax.Tests.Helpers

let private five () = torch.tensor 5.0f

/// ninjax's test_scopes: a method in the module's scope with a nested scope, and a method with a
/// method-level scope (ninjax's @nj.scope('method2')).
type ScopedFoo(name: string) =
    inherit Module(name)
    member val Seen = "" with get, set
    member this.Method() =
        this.Scoped(fun () ->
            Nj.scope "scope" (fun () ->
                let sub = this.Sub("sub1", fun () -> Variable(fun () -> five ()))
                sub.Read() |> ignore
                this.Seen <- sub.Path)
            this.Value("value", fun () -> five ()))
    member this.Method2() =
        this.Scoped("method2", fun () ->
            let sub = this.Sub("sub2", fun () -> Variable(fun () -> torch.tensor 2.0f))
            sub.Read())

/// ninjax's test_basic: a module constructed by name in the constructor goes under the module,
/// here for a top-level module through Scoped.
type BasicFoo(name: string) as this =
    inherit Module(name)
    let bar = this.Scoped(fun () -> Variable((fun () -> five ()), "bar"))
    member _.Bar = bar
    member this.Method() =
        let baz = this.Value("baz", fun () -> torch.tensor 3.0f)
        let result = bar.Read() + baz
        this.Write("baz", result) |> ignore
        result

/// A module whose methods make submodules of the same name in two scopes.
type TwoScopes(name: string) =
    inherit Module(name)
    member this.Run() =
        let a = this.Scoped("a", fun () -> this.Sub("sub", fun () -> Variable(fun () -> torch.tensor 1.0f)))
        let b = this.Scoped("b", fun () -> this.Sub("sub", fun () -> Variable(fun () -> torch.tensor 2.0f)))
        let a2 = this.Scoped("a", fun () -> this.Sub<Variable>("sub", null))
        let plain = this.Sub("sub", fun () -> Variable(fun () -> torch.tensor 3.0f))
        a, b, a2, plain

[<Tests>]
let tests =
    testList "scopes" [
        testCase "ninjax test_scopes: Nj.scope outside a call places modules built in it" <| fun () ->
            let v = Nj.scope "foo" (fun () -> Nj.scope "bar" (fun () -> Variable((fun () -> five ()), "baz")))
            Expect.equal v.Path "foo/bar/baz" "path"
            Expect.equal (Nj.currentScope ()) "" "the scope ends with the function"

        testCase "ninjax test_scopes: method scopes and scopes inside methods" <| fun () ->
            let foo = ScopedFoo "foo"
            let state = Nj.init 0L foo.Method State.empty ()
            let state = Nj.init 0L foo.Method2 state ()
            Expect.equal foo.Seen "foo/scope/sub1" "a submodule made inside a scope of the method"
            Expect.equal (State.keys state) [ "foo/method2/sub2/value"; "foo/scope/sub1/value"; "foo/value" ] "keys"
            // Later calls find the same submodules.
            let _, v = Nj.purify foo.Method2 state ()
            expectIdentical v (torch.tensor 2.0f) "read back"

        testCase "ninjax test_basic: a named module built in a constructor goes under the module" <| fun () ->
            let foo = BasicFoo "foo"
            Expect.equal foo.Bar.Path "foo/bar" "path"
            let state, result = Nj.purifyWith (Options.defaults |> Options.withCreate true) foo.Method State.empty ()
            expectIdentical result (torch.tensor 8.0f) "first call"
            Expect.equal (State.keys state) [ "foo/bar/value"; "foo/baz" ] "keys"
            let state, result = Nj.purify foo.Method state ()
            expectIdentical result (torch.tensor 13.0f) "second call"
            let _, result = Nj.purify foo.Method state ()
            expectIdentical result (torch.tensor 18.0f) "third call"

        testCase "Sub in a scope is another submodule than Sub of the same name outside it" <| fun () ->
            let m = TwoScopes "m"
            let (a, b, a2, plain), _ =
                let state = Nj.init 0L (fun () -> m.Run() |> ignore) State.empty ()
                Nj.purify m.Run state () |> snd, state
            Expect.equal [ a.Path; b.Path; plain.Path ] [ "m/a/sub"; "m/b/sub"; "m/sub" ] "paths"
            Expect.isTrue (obj.ReferenceEquals(a, a2)) "the same scope finds the same submodule"

        testCase "entries read by relative name go under the scope, inside and outside modules" <| fun () ->
            let m = ScopedFoo "m"
            let f () =
                let inModule = m.Scoped("inner", fun () -> Nj.get "x" (fun () -> torch.zeros 1L))
                let free = Nj.scope "free" (fun () -> Nj.scope "deeper" (fun () -> Nj.get "y" (fun () -> torch.ones 1L)))
                inModule, free
            let state = Nj.init 0L f State.empty ()
            Expect.equal (State.keys state) [ "free/deeper/y"; "m/inner/x" ] "keys"

        testCase "purified calls keep the scope they are called in (ninjax's scope is global)" <| fun () ->
            let f () = Nj.get "x" (fun () -> torch.zeros 1L) |> ignore
            let state = Nj.scope "outer" (fun () -> Nj.init 0L f State.empty ())
            Expect.equal (State.keys state) [ "outer/x" ] "a top-level call inside Nj.scope"
            let inner = Nj.purifyWith (Options.defaults |> Options.nested) f
            let outer () = Nj.scope "s" (fun () -> State.keys (fst (inner (Nj.state ()) ())))
            let _, keys = Nj.purifyWith (Options.defaults |> Options.withCreate true) outer State.empty ()
            Expect.equal keys [ "s/x" ] "a nested call inherits the scope"

        testCase "a module built while creating inside a purified scope goes under it" <| fun () ->
            let f () = Nj.scope "net" (fun () -> Variable((fun () -> torch.ones 2L), "w").Read())
            let state = Nj.init 0L f State.empty ()
            Expect.equal (State.keys state) [ "net/w/value" ] "keys"

        testCase "bad scope names are named" <| fun () ->
            let msg = throwsWith<ArgumentException> (fun () -> Nj.scope "a b" (fun () -> ()) |> ignore)
            mentions msg [ "a b" ]
            let m = ScopedFoo "m"
            let msg = throwsWith<ArgumentException> (fun () -> m.Scoped("", fun () -> 1) |> ignore)
            mentions msg [ "empty" ]
            // A function returning nothing takes the Action overload.
            let msg = throwsWith<ArgumentException> (fun () -> m.Scoped("x/", fun () -> ()))
            mentions msg [ "x/" ]
    ]
