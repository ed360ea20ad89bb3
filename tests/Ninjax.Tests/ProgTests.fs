module Ninjax.Tests.ProgTests

open System
open System.Collections.Generic
open Expecto
open TorchSharp
open Ninjax
open Ninjax.Tests.Helpers

let private zeros3 = Prog.ret (torch.zeros 3L)

[<Tests>]
let tests =
    testList "monad" [
        testCase "get creates on first use and returns the stored value after" <| fun () ->
            let prog = nj {
                let! a = Prog.get "a" (Prog.delay (fun () -> Prog.ret (vec [ 1f; 2f ])))
                let! again = Prog.get "a" (Prog.delay (fun () -> failwith "constructor must not run twice"))
                return obj.ReferenceEquals(a, again)
            }
            let o = Purify.run creating prog State.empty
            Expect.isTrue o.Output "same tensor"
            Expect.equal (State.keys o.State) [ "a" ] "created"
            Expect.equal o.Created (set [ "a" ]) "tracked as created"

        testCase "scopes nest" <| fun () ->
            let prog = Prog.scope "outer" (Prog.scope "inner" (Prog.get "w" zeros3))
            let o = Purify.run creating prog State.empty
            Expect.equal (State.keys o.State) [ "outer/inner/w" ] "nested key"
            let read = Purify.run Options.defaults (Prog.scope "outer" (Prog.state |> Prog.map State.keys)) o.State
            Expect.equal read.Output [ "outer/inner/w" ] "whole-state access"

        testCase "a missing key names itself and nearby keys" <| fun () ->
            let s = State.ofSeq [ "model/h1/w", vec [ 1f ]; "model/h1/b", vec [ 1f ] ]
            let msg = throwsWith<KeyNotFoundException> (fun () -> Purify.run Options.defaults (Prog.read "model/h1/v") s |> ignore)
            mentions msg [ "model/h1/v"; "model/h1/w"; "create=false" ]

        testCase "creating without create=true fails naming the key" <| fun () ->
            let msg = throwsWith<InvalidOperationException> (fun () -> Purify.run Options.defaults (Prog.get "fresh" zeros3) State.empty |> ignore)
            mentions msg [ "fresh"; "create" ]

        testCase "modify=false forbids writes and names key, shapes and dtypes" <| fun () ->
            let s = State.ofSeq [ "k", vec [ 1f; 2f ] ]
            let opts = Options.defaults |> Options.withModify false
            let msg = throwsWith<InvalidOperationException> (fun () -> Purify.run opts (Prog.put "k" (vec [ 3f; 4f ])) s |> ignore)
            mentions msg [ "'k'"; "modify=false"; "[2]"; "Float32" ]

        testCase "a write must keep shape and dtype" <| fun () ->
            let s = State.ofSeq [ "k", vec [ 1f; 2f ] ]
            let msg = throwsWith<ArgumentException> (fun () -> Purify.run Options.defaults (Prog.put "k" (vec [ 1f; 2f; 3f ])) s |> ignore)
            mentions msg [ "'k'"; "[2]"; "[3]" ]
            let msg = throwsWith<ArgumentException> (fun () -> Purify.run Options.defaults (Prog.put "k" (torch.tensor [| 1.0; 2.0 |])) s |> ignore)
            mentions msg [ "'k'"; "Float32"; "Float64" ]

        testCase "ignore drops writes to existing keys but creates new ones" <| fun () ->
            let s = State.ofSeq [ "k", vec [ 1f ] ]
            let prog = nj {
                let! _ = Prog.put "k" (vec [ 9f ])
                let! _ = Prog.put "n" (vec [ 5f ])
                return ()
            }
            let opts = creating |> Options.withIgnore true
            let o = Purify.run opts prog s
            expectIdentical o.State.["k"] (vec [ 1f ]) "ignored"
            expectIdentical o.State.["n"] (vec [ 5f ]) "created"
            Expect.equal o.Modified (set [ "k" ]) "modified is tracked even if ignored"

        testCase "getm filters relative keys and putm stays inside its scope" <| fun () ->
            let s = State.ofSeq [ "m/w1", vec [ 1f ]; "m/w2", vec [ 2f ]; "m/b", vec [ 3f ]; "other/w1", vec [ 4f ] ]
            let prog = Prog.scope "m" (Prog.getm (Some(Text.RegularExpressions.Regex "w.*")))
            let o = Purify.run Options.defaults prog s
            Expect.equal (State.keys o.Output) [ "m/w1"; "m/w2" ] "filtered"
            Expect.equal o.Read (set [ "m/w1"; "m/w2" ]) "counted as read"
            let outside = State.ofSeq [ "other/w1", vec [ 0f ] ]
            let msg = throwsWith<ArgumentException> (fun () -> Purify.run Options.defaults (Prog.scope "m" (Prog.putm outside)) s |> ignore)
            mentions msg [ "other/w1"; "m" ]

        testCase "the caller's state is untouched when a call fails half way" <| fun () ->
            let s = State.ofSeq [ "a", vec [ 1f ]; "b", vec [ 2f ] ]
            let before = State.toSeq s |> List.ofSeq
            let prog = nj {
                let! _ = Prog.put "a" (vec [ 10f ])
                let! _ = Prog.put "b" (vec [ 1f; 2f ]) // wrong shape: fails
                return ()
            }
            throwsWith<ArgumentException> (fun () -> Purify.run Options.defaults prog s |> ignore) |> ignore
            Expect.equal (State.toSeq s |> List.ofSeq) before "same entries, same tensor objects"
            expectIdentical s.["a"] (vec [ 1f ]) "value unchanged"

        testCase "rng without a seed asks for one" <| fun () ->
            let msg = throwsWith<InvalidOperationException> (fun () -> Purify.run Options.defaults Prog.rng State.empty |> ignore)
            mentions msg [ "seed" ]

        testCase "creating reports the create flag" <| fun () ->
            Expect.isTrue (Purify.run creating Prog.creating State.empty).Output "on"
            Expect.isFalse (Purify.run Options.defaults Prog.creating State.empty).Output "off"

        testCase "a program is a value: running it twice gives the same result" <| fun () ->
            let prog = nj {
                let! g = Prog.rng
                let! w = Prog.get "w" (Prog.ret (torch.randn([| 4L |], generator = g)))
                let! _ = Prog.put "w" (w * 2.0f)
                return ()
            }
            let a = Purify.run creating prog State.empty
            let b = Purify.run creating prog State.empty
            expectSameState a.State b.State "deterministic"

        testCase "the builder supports loops, try/with and sequencing" <| fun () ->
            let prog = nj {
                let! _ = Prog.get "n" (Prog.ret (torch.zeros([| 1L |], dtype = torch.int64)))
                for _ in 1 .. 3 do
                    let! n = Prog.read "n"
                    let! _ = Prog.put "n" (n + 1L)
                    ()
                let! caught =
                    nj {
                        try
                            let! _ = Prog.read "absent"
                            return false
                        with :? KeyNotFoundException -> return true
                    }
                let! n = Prog.read "n"
                return n.item<int64> (), caught
            }
            let o = Purify.run creating prog State.empty
            Expect.equal o.Output (3L, true) "counted and caught"
    ]
