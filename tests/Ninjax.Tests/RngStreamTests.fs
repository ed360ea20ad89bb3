module Ninjax.Tests.RngStreamTests

open System
open Expecto
open TorchSharp
open Ninjax
open Ninjax.Tests.Helpers

/// A GAN-like step: latent noise drawn from the call's randomness, a scan that draws per step,
/// and a counter, so that a test can see what each call drew.
type Sampler(name: string) =
    inherit Module(name)
    member this.Step() =
        let z = torch.randn([| 4L |], generator = Nj.rng ())
        let _, perStep = Nj.scan (fun () (x: torch.Tensor) -> (), x + torch.rand([| 2L |], generator = Nj.rng ())) () (torch.zeros(3L, 2L))
        this.Put("steps", this.Get("steps", fun () -> torch.zeros([||], dtype = torch.int64)) + 1L) |> ignore
        z, perStep

let private streaming = Options.seeded 0L |> Options.withRngStream "rng"

[<Tests>]
let tests =
    testList "rng stream" [
        testCase "without a stream, a loop that passes one seed draws the same noise every step" <| fun () ->
            let m = Sampler "gan"
            let state = Nj.init 0L m.Step State.empty ()
            let step = Nj.purifyWith (Options.seeded 0L) m.Step
            let s1, (z1, _) = step state ()
            let _, (z2, _) = step s1 ()
            expectIdentical z2 z1 "the same latent vectors: what the stream fixes"

        testCase "with a stream, every step draws fresh noise, and the same state draws the same" <| fun () ->
            let m = Sampler "gan"
            let state = Nj.initWith streaming m.Step State.empty ()
            Expect.equal (State.keys state) [ "gan/steps"; "rng/count"; "rng/seed" ] "the stream lives in the state"
            expectIdentical state.["rng/seed"] (torch.tensor 0L) "started from init's seed"
            expectIdentical state.["rng/count"] (torch.tensor 0L) "init does not advance it"
            let step = Nj.purifyWith streaming m.Step
            let s1, (z1, p1) = step state ()
            let s2, (z2, p2) = step s1 ()
            Expect.isFalse (identical z1 z2) "fresh latent vectors each step"
            Expect.isFalse (identical p1 p2) "fresh randomness inside scan steps each call"
            Expect.isFalse (identical (p1.select(0L, 0L)) (p1.select(0L, 1L))) "and per scan step"
            expectIdentical s2.["rng/count"] (torch.tensor 2L) "advanced once per call"
            let _, (again, _) = step s1 ()
            expectIdentical again z2 "a call is a function of its state"
            let _, (other, _) = Nj.purifyWith (Options.seeded 99L |> Options.withRngStream "rng") m.Step s1 ()
            expectIdentical other z2 "once the stream exists, the call's seed does not matter"
            let frozen, (z3, _) = Nj.purifyWith (streaming |> Options.withModify false |> Options.withIgnore true) m.Step s1 ()
            expectIdentical z3 z2 "a call that may not modify draws from the stream too"
            expectIdentical frozen.["rng/count"] (torch.tensor 1L) "but cannot advance it"

        testCase "the stream works with donation, nested calls and gradients" <| fun () ->
            let m = Sampler "d"
            let state = Nj.initWith streaming m.Step State.empty ()
            let donating = Nj.purifyWith (streaming |> Options.donating) m.Step
            let s1, (z1, _) = donating (copyState state) ()
            let s2, (z2, _) = donating s1 ()
            Expect.isTrue s1.IsDonated "the state was handed over"
            Expect.isFalse (identical z1 z2) "fresh noise while donating"
            expectIdentical s2.["rng/count"] (torch.tensor 2L) "count"
            let _, (plain, _) = Nj.purifyWith streaming m.Step state ()
            expectIdentical z1 plain "donation changes nothing about the draws"
            // A nested call with the stream advances it inside the outer call.
            let inner = Nj.purifyWith (Options.defaults |> Options.nested |> Options.withRngStream "rng") (fun () -> torch.rand([| 2L |], generator = Nj.rng ()))
            let outer () =
                let s, a = inner (Nj.state ()) ()
                let _, b = inner s ()
                a, b
            let _, (a, b) = Nj.purifyWith (Options.defaults |> Options.withCreate true) outer state ()
            Expect.isFalse (identical a b) "consecutive nested calls draw differently"
            // Writes inside a gradient and draws inside it come from the same stream.
            let w = Variable((fun () -> torch.ones 2L), "w")
            let noisyLoss () = (w.Read() * torch.rand([| 2L |], generator = Nj.rng ())).sum()
            let train () = let l, _, _ = Nj.grad noisyLoss [ Target.Module w ] () in l
            let s0 = Nj.initWith streaming train State.empty ()
            let f = Nj.purifyWith streaming train
            let t1, l1 = f s0 ()
            let _, l2 = f t1 ()
            Expect.isFalse (identical l1 l2) "a noisy loss changes from step to step"

        testCase "the monadic Prog.withRngStream is what the option runs" <| fun () ->
            let program = Prog.rng |> Prog.map (fun g -> torch.rand([| 3L |], generator = g))
            let start = (Purify.run (Options.seeded 5L |> Options.withCreate true) (Prog.withRngStream "s" program) State.empty).State
            let viaProg = Purify.run Options.defaults (Prog.withRngStream "s" program) start
            let viaOption = Purify.run (Options.defaults |> Options.withRngStream "s") program start
            expectIdentical viaOption.Output viaProg.Output "same draws"
            expectSameState viaOption.State viaProg.State "same state"
            Expect.equal viaOption.Read (set [ "s/count"; "s/seed" ]) "the stream is read"
            Expect.equal viaOption.Modified (set [ "s/count" ]) "and its count modified"

        testCase "tryRng is ninjax's seed(optional=True): None without a seed, the next generator with one" <| fun () ->
            let f () = Nj.tryRng () |> Option.map (fun g -> torch.rand([| 2L |], generator = g))
            let _, none = Nj.purify f State.empty ()
            Expect.isNone none "no seed, no generator"
            let _, some = Nj.purifyWith (Options.seeded 3L) f State.empty ()
            let _, viaRng = Nj.purifyWith (Options.seeded 3L) (fun () -> torch.rand([| 2L |], generator = Nj.rng ())) State.empty ()
            expectIdentical some.Value viaRng "the same draw as Nj.rng"
            let o = Purify.run Options.defaults Prog.tryRng State.empty
            Expect.isNone o.Output "Prog.tryRng without a seed"

        testCase "a stream without a seed to start it, a missing stream and a clashing key are named" <| fun () ->
            let f () = torch.rand([| 1L |], generator = Nj.rng ())
            let msg = throwsWith<InvalidOperationException> (fun () -> Nj.initWith (Options.defaults |> Options.withRngStream "rng") f State.empty () |> ignore)
            mentions msg [ "'rng'"; "seed"; "Nj.init 0L" ]
            let msg = throwsWith<Collections.Generic.KeyNotFoundException> (fun () -> Nj.purifyWith (Options.defaults |> Options.withRngStream "rng") f State.empty () |> ignore)
            mentions msg [ "rng/seed"; "rng/count"; "create=false"; "Options.withRngStream" ]
            let clash = State.ofSeq [ "rng/seed", torch.ones 3L; "rng/count", torch.tensor 0L ]
            let msg = throwsWith<InvalidOperationException> (fun () -> Nj.purifyWith (Options.defaults |> Options.withRngStream "rng") f clash () |> ignore)
            mentions msg [ "rng/seed"; "[3]"; "int64 scalar" ]
            let msg = throwsWith<ArgumentException> (fun () -> Options.defaults |> Options.withRngStream "a b" |> ignore)
            mentions msg [ "a b" ]
    ]
