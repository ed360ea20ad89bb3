/// The library's moving average (Training/MovingAverage.fs): values, in-place updates when
/// donated, the entries it copies, and its errors.
module Ninjax.Tests.MovingAverageTests

open System
open Expecto
open TorchSharp
open Ninjax
open Ninjax.Tests.Helpers

/// A module whose entries a test sets: a float32 vector, a float64 matrix, an int64 counter.
type private Holder(name: string) =
    inherit Module(name)
    member this.Set(w: torch.Tensor, m: torch.Tensor, n: int64) =
        this.Put("w", this.Get("w", fun () -> torch.zeros_like w) * 0.0f + w) |> ignore
        this.Put("m", this.Get("m", fun () -> torch.zeros_like m) * 0.0 + m) |> ignore
        this.Put("n", this.Get("n", fun () -> torch.zeros(1L, dtype = torch.int64)) * 0L + n) |> ignore

let private steps (donate: bool) (decay: float) (values: (torch.Tensor * torch.Tensor * int64) list) : State list =
    let source = Holder "source"
    let average = Holder "average"
    let opts = (if donate then Options.donating else id) (Options.defaults |> Options.withCreate true)
    let step = Nj.purifyWith opts (fun (w, m, n) -> source.Set(w, m, n); MovingAverage.update average source decay)
    // Copies of each state as its call left it (a donated state cannot be read after the next call).
    let mutable state = State.empty
    [ for v in values do
          state <- fst (step state v)
          yield State.map (fun _ t -> t.clone ()) state ]

[<Tests>]
let tests =
    testList "moving average" [
        testCase "starts as a copy, then moves floating entries by 1 - decay towards the source and copies the others" <| fun () ->
            // 37 elements: a vector part and a scalar tail in the SIMD loop.
            let w1, w2 = torch.randn 37L, torch.randn 37L
            let m1, m2 = torch.randn(3L, 5L, dtype = torch.float64), torch.randn(3L, 5L, dtype = torch.float64)
            match steps false 0.9 [ w1, m1, 3L; w2, m2, 7L ] with
            | [ first; second ] ->
                expectIdentical first.["average/w"] w1 "a copy on first use"
                expectIdentical first.["average/m"] m1 "a copy on first use (float64)"
                expectClose second.["average/w"] (w1 * 0.9f + w2 * 0.1f) 1e-6 "0.9 old + 0.1 new (float32)"
                expectClose second.["average/m"] (m1 * 0.9 + m2 * 0.1) 1e-12 "0.9 old + 0.1 new (float64)"
                expectIdentical second.["average/w"] (torch.lerp (w1, w2, torch.tensor 0.1f)) "as libtorch's lerp"
                expectIdentical second.["average/n"] (torch.tensor [| 7L |]) "integers are copied"
            | other -> failtestf "expected two states, got %d" other.Length

        testCase "donating, the average's tensors are updated in place, to the same bits as without donation" <| fun () ->
            let values = [ for i in 1..4 -> torch.randn 100L, torch.randn(4L, 4L, dtype = torch.float64), int64 i ]
            let plain = steps false 0.75 values
            let donated = steps true 0.75 values
            for a, b in List.zip plain donated do
                for k in [ "average/w"; "average/m"; "average/n" ] do
                    expectIdentical b.[k] a.[k] k
            // In place: the same tensor object from one donating call to the next.
            let source = Holder "source"
            let average = Holder "average"
            let step = Nj.purifyWith (Options.donating (Options.defaults |> Options.withCreate true)) (fun (w: torch.Tensor) -> source.Set(w, torch.zeros(2L, dtype = torch.float64), 0L); MovingAverage.update average source 0.5)
            let s1, _ = step State.empty (torch.ones 8L)
            let before = s1.["average/w"]
            let s2, _ = step s1 (torch.ones 8L * 3.0f)
            Expect.isTrue (obj.ReferenceEquals(s2.["average/w"], before)) "the same tensor, updated"
            expectIdentical s2.["average/w"] (torch.ones 8L * 2.0f) "to the average"

        testCase "without donation the caller's state keeps its tensors and values" <| fun () ->
            let source = Holder "source"
            let average = Holder "average"
            let step = Nj.purifyWith (Options.defaults |> Options.withCreate true) (fun (w: torch.Tensor) -> source.Set(w, torch.zeros(2L, dtype = torch.float64), 0L); MovingAverage.update average source 0.5)
            let s1, _ = step State.empty (torch.ones 8L)
            let kept = s1.["average/w"].clone ()
            let s2, _ = step s1 (torch.ones 8L * 3.0f)
            expectIdentical s1.["average/w"] kept "unchanged"
            Expect.isFalse (obj.ReferenceEquals(s2.["average/w"], s1.["average/w"])) "a new tensor"

        testCase "entries the loops cannot read (not contiguous, float16) average through libtorch" <| fun () ->
            let source = Holder "source"
            let average = Holder "average"
            let f (w: torch.Tensor, m: torch.Tensor) =
                source.Put("h", source.Get("h", fun () -> torch.zeros(4L, dtype = torch.float16)) * 0.0 + w.to_type torch.float16) |> ignore
                source.Put("t", source.Get("t", fun () -> torch.zeros(5L, 3L).t ()) * 0.0f + m.t ()) |> ignore
                MovingAverage.update average source 0.5
            let step = Nj.purifyWith (Options.defaults |> Options.withCreate true) f
            let s1, _ = step State.empty (torch.ones 4L, torch.ones(5L, 3L))
            let s2, _ = step s1 (torch.ones 4L * 3.0f, torch.ones(5L, 3L) * 5.0f)
            expectIdentical s2.["average/h"] (torch.ones(4L, dtype = torch.float16) * 2.0) "float16"
            expectIdentical s2.["average/t"] (torch.ones(3L, 5L) * 3.0f) "transposed"

        testCase "its entries are buffers" <| fun () ->
            let source = Holder "src"
            let average = Holder "avg"
            let state = Nj.init 0L (fun () -> source.Set(torch.ones 2L, torch.ones(2L, dtype = torch.float64), 1L); MovingAverage.update average source 0.9) State.empty ()
            let kinds = average.EntryKinds state
            Expect.equal kinds.["avg/w"] EntryKind.Buffer "float32"
            Expect.equal kinds.["avg/m"] EntryKind.Buffer "float64"
            Expect.isEmpty (average.ParameterKeys state) "no parameters"

        testCase "bad arguments name what is wrong" <| fun () ->
            let source = Holder "source"
            let average = Holder "average"
            let call (f: unit -> unit) = Nj.purifyWith (Options.defaults |> Options.withCreate true) f State.empty () |> ignore
            for decay in [ 1.0; -0.1; nan ] do
                Expect.throwsT<ArgumentOutOfRangeException> (fun () -> call (fun () -> MovingAverage.update average source decay)) (sprintf "decay %g" decay)
            mentions (throwsWith<ArgumentOutOfRangeException> (fun () -> call (fun () -> MovingAverage.update average source 1.0))) [ "decay"; "[0, 1)" ]
            mentions (throwsWith<ArgumentNullException> (fun () -> call (fun () -> MovingAverage.update null source 0.5))) [ "average" ]
            let other = Holder "other"
            let mismatched () =
                source.Set(torch.ones 3L, torch.ones(2L, dtype = torch.float64), 0L)
                other.Set(torch.ones 4L, torch.ones(2L, dtype = torch.float64), 0L)
                MovingAverage.update other source 0.5
            mentions (throwsWith<ArgumentException> (fun () -> call mismatched)) [ "'w'"; "[4]"; "[3]" ]
    ]
