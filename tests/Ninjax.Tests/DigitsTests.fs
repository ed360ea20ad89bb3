module Ninjax.Tests.DigitsTests

open System
open System.IO
open Expecto
open TorchSharp
open Ninjax
open Ninjax.Tests.Helpers
open Digits.Program

let private settings kind epochs =
    { Kind = kind; Epochs = epochs; BatchSize = 64; LearningRate = 1e-3; Seed = 3L
      Save = None; Resume = None; DataFolder = Digits.Data.defaultFolder (); Plain = true; Quiet = true }

let private temp () = Path.Combine(Path.GetTempPath(), sprintf "ninjax-digits-%s.safetensors" (Guid.NewGuid().ToString "N"))

[<Tests>]
let tests =
    testList "digits" [
        testCase "the data loads with the documented sizes and ranges" <| fun () ->
            let train, test = Digits.Data.loadBoth (Digits.Data.defaultFolder ())
            Expect.equal train.Images.shape [| 3823L; 64L |] "train images"
            Expect.equal test.Labels.shape [| 1797L |] "test labels"
            Expect.equal (train.Images.max().item<float32> ()) 1.0f "scaled to [0, 1]"
            Expect.sequenceEqual (train.Labels.bincount(null).data<int64>().ToArray()) [ 376L; 389L; 380L; 389L; 387L; 376L; 377L; 387L; 380L; 382L ] "class counts from the data's README"

        testCase "resuming after N epochs and training M more equals N+M in one go" <| fun () ->
            let full, fullAccuracy = run (settings Mlp 2)
            let checkpoint = temp ()
            try
                let _, _ = run { settings Mlp 1 with Save = Some checkpoint }
                let resumed, resumedAccuracy = run { settings Mlp 2 with Resume = Some checkpoint }
                expectSameState resumed full "same parameters, moments and step count"
                Expect.equal resumedAccuracy fullAccuracy "same accuracy"
            finally
                File.Delete checkpoint

        testCase "two runs with the same seed agree to every digit" <| fun () ->
            let a, accA = run (settings Cnn 1)
            let b, accB = run (settings Cnn 1)
            Expect.equal accA accB "accuracy"
            expectSameState a b "state"

        testCase "resuming from a checkpoint of another model lists every mismatch" <| fun () ->
            let checkpoint = temp ()
            try
                let _, _ = run { settings Mlp 1 with Save = Some checkpoint }
                let msg = throwsWith<InvalidOperationException> (fun () -> run { settings Cnn 2 with Resume = Some checkpoint } |> ignore)
                mentions msg [ checkpoint; "model/conv1/w"; "model/dense0/w" ]
            finally
                File.Delete checkpoint
    ]
