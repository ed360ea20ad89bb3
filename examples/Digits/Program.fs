/// Trains a digit classifier on the UCI optical digits and prints its test accuracy.
module Digits.Program

open System
open System.Diagnostics
open Argu
open Spectre.Console
open TorchSharp
open Ninjax
open Digits.Data
open Digits.Models

type ModelKind =
    | Mlp
    | Cnn

type Arguments =
    | Model of ModelKind
    | Epochs of int
    | Batch_Size of int
    | Learning_Rate of float
    | Weight_Decay of float
    | Dropout of rate: float
    | Label_Smoothing of weight: float
    | No_Augment
    | Seed of int64
    | Save of path: string
    | Stop_After of epochs: int
    | Resume of path: string
    | Data of folder: string
    | Threads of count: int
    | Plain
    | Quiet

    interface IArgParserTemplate with
        member this.Usage =
            match this with
            | Model _ -> "the model: cnn (3x3 convolutions of 32 and 64 channels, max pooling, a dense head) or mlp (64-256-256-10). Default: cnn."
            | Epochs _ -> "passes over the training set; the learning-rate schedule spans them. Default: 20."
            | Batch_Size _ -> "images per step. Default: 32."
            | Learning_Rate _ -> "the peak learning rate of AdamW's one-cycle schedule. Default: 0.003."
            | Weight_Decay _ -> "AdamW's decoupled weight decay. Default: 0.01."
            | Dropout _ -> "the CNN's dropout rate before each dense layer (the MLP has none). Default: 0.3."
            | Label_Smoothing _ -> "the weight the training target spreads evenly over all classes. Default: 0.1."
            | No_Augment -> "train on the images as they are, without a fresh random rotation, scaling and shift of each per epoch."
            | Seed _ -> "the seed for initialisation, shuffling, augmentation and dropout. Default: 0."
            | Save _ -> "write a checkpoint (state, epoch) to this file at the end."
            | Stop_After _ -> "stop after this many epochs of --epochs (the schedule still spans --epochs); continue later with --resume."
            | Resume _ -> "continue from a checkpoint written by --save, with its optimizer state and schedule."
            | Data _ -> "the folder holding optdigits.tra and optdigits.tes. Default: data/optdigits of this checkout."
            | Threads _ -> "TorchSharp's intra-op threads. Default: 1 (these models are small; more threads only contend on a busy machine)."
            | Plain -> "print plain progress lines even in a terminal."
            | Quiet -> "print only the final test accuracy."

/// The settings of one training run.
type Settings =
    { Kind: ModelKind; Epochs: int; BatchSize: int; LearningRate: float; WeightDecay: float; Dropout: float
      LabelSmoothing: float; Augment: bool; Seed: int64; Save: string option; StopAfter: int option; Resume: string option
      DataFolder: string; Threads: int; Plain: bool; Quiet: bool }

    /// The defaults of the command line; an empty DataFolder means data/optdigits of this checkout.
    static member Default =
        { Kind = Cnn; Epochs = 20; BatchSize = 32; LearningRate = 3e-3; WeightDecay = 0.01; Dropout = 0.3
          LabelSmoothing = 0.1; Augment = true; Seed = 0L; Save = None; StopAfter = None; Resume = None
          DataFolder = ""; Threads = 1; Plain = false; Quiet = false }

let settingsOf (results: ParseResults<Arguments>) =
    let d = Settings.Default
    let settings =
        { Kind = results.GetResult(Model, defaultValue = d.Kind)
          Epochs = results.GetResult(Epochs, defaultValue = d.Epochs)
          BatchSize = results.GetResult(Batch_Size, defaultValue = d.BatchSize)
          LearningRate = results.GetResult(Learning_Rate, defaultValue = d.LearningRate)
          WeightDecay = results.GetResult(Weight_Decay, defaultValue = d.WeightDecay)
          Dropout = results.GetResult(Dropout, defaultValue = d.Dropout)
          LabelSmoothing = results.GetResult(Label_Smoothing, defaultValue = d.LabelSmoothing)
          Augment = not (results.Contains No_Augment)
          Seed = results.GetResult(Seed, defaultValue = d.Seed)
          Save = results.TryGetResult Save
          StopAfter = results.TryGetResult Stop_After
          Resume = results.TryGetResult Resume
          DataFolder = results.GetResult(Data, defaultValue = d.DataFolder)
          Threads = results.GetResult(Threads, defaultValue = d.Threads)
          Plain = results.Contains Plain || Console.IsOutputRedirected
          Quiet = results.Contains Quiet }
    if settings.Threads <= 0 then raise (ArgumentException(sprintf "--threads must be positive; it was %d." settings.Threads))
    if settings.Epochs <= 0 then raise (ArgumentException(sprintf "--epochs must be positive; it was %d." settings.Epochs))
    if settings.BatchSize <= 0 then raise (ArgumentException(sprintf "--batch-size must be positive; it was %d." settings.BatchSize))
    if not (settings.LearningRate > 0.0) then raise (ArgumentException(sprintf "--learning-rate must be positive; it was %g." settings.LearningRate))
    if not (settings.WeightDecay >= 0.0) then raise (ArgumentException(sprintf "--weight-decay must be zero or more; it was %g." settings.WeightDecay))
    if not (settings.Dropout >= 0.0 && settings.Dropout < 1.0) then raise (ArgumentException(sprintf "--dropout must lie in [0, 1); it was %g." settings.Dropout))
    if not (settings.LabelSmoothing >= 0.0 && settings.LabelSmoothing <= 1.0) then
        raise (ArgumentException(sprintf "--label-smoothing must lie in [0, 1]; it was %g." settings.LabelSmoothing))
    match settings.StopAfter with
    | Some n when n <= 0 || n > settings.Epochs ->
        raise (ArgumentException(sprintf "--stop-after must lie between 1 and --epochs (%d); it was %d." settings.Epochs n))
    | _ -> ()
    settings

/// The number of steps in one epoch.
let stepsPerEpoch (settings: Settings) (trainSize: int64) = int ((trainSize + int64 settings.BatchSize - 1L) / int64 settings.BatchSize)

/// AdamW with a one-cycle learning rate over the whole run (PyTorch's OneCycleLR with cosine
/// annealing: from peak/25 up to the peak over the first 30% of the steps, then down to peak/250,000).
let optimizerOf (settings: Settings) (totalSteps: int) : GradientTransformation =
    let peak = settings.LearningRate
    let warmup = max 1L (int64 (0.3 * float totalSteps))
    let schedule = Schedule.warmupCosineDecay (peak / 25.0) peak warmup (max (warmup + 1L) (int64 totalSteps)) (peak / 2.5e5)
    Optax.adamwWith { AdamOptions.DefaultW with LearningRate = schedule; WeightDecay = settings.WeightDecay }

/// The model; data-parallel across the ranks of comm when it is not null.
let makeModel (settings: Settings) (totalSteps: int) (comm: Communicator) : Classifier =
    let optimizer = optimizerOf settings totalSteps
    match settings.Kind with
    | Mlp -> Models.Mlp([ 256; 256 ], optimizer, settings.LabelSmoothing, "model", ?comm = Option.ofObj comm)
    | Cnn -> Models.Cnn(32, settings.Dropout, optimizer, settings.LabelSmoothing, "model", ?comm = Option.ofObj comm)

/// The job's communicator when the trainer runs under mpirun, else null (one process).
let communicator () : Communicator = if Communicator.IsLaunched then Communicator.World else null

/// The fraction of a split a model classifies correctly.
let accuracy (model: Classifier) (state: State) (split: Split) : float =
    let correct = Nj.purify model.Correct
    let total = batches 0L 512 split |> Seq.sumBy (fun (x, y) -> (snd (correct state (x, y))).item<int64> ())
    float total / float (split.Labels.size 0)

/// The seed of one training step: each step draws its own dropout masks. It depends on the run's
/// seed and the step's place in the run only, so a resumed run draws what an uninterrupted one does.
let stepSeed (settings: Settings) (step: int64) = settings.Seed * 4_294_967_296L + step

/// One epoch of training: the new state, the mean loss and the training accuracy. Under mpirun
/// (comm not null) each rank trains on its share of every batch, with randomness of its own
/// (DataParallel.seed); the batches are the same on every rank, and the accuracy sums the shares.
let runEpoch (model: Classifier) (settings: Settings) (comm: Communicator) (epoch: int) (state: State) (split: Split) (onStep: unit -> unit) =
    let mutable state = state
    let mutable lossSum = 0.0
    let mutable correct = 0L
    let mutable steps = 0
    // The augmentation and the order depend on the seed and the epoch only, so a resumed run sees the same batches.
    use g = new torch.Generator(uint64 (settings.Seed * 1000L + int64 epoch))
    let epochSplit = if settings.Augment then Data.augmented g split else split
    let firstStep = int64 (epoch - 1) * int64 (stepsPerEpoch settings (split.Labels.size 0))
    for x, y in shuffledBatches g settings.BatchSize epochSplit do
        // The loop hands each state over to the next step (donation), so the optimizer updates the
        // parameters and moments in place instead of allocating new ones every step.
        let seed = stepSeed settings (firstStep + int64 steps)
        let next, metrics =
            if isNull comm then Nj.purifyWith (Options.seeded seed |> Options.donating) model.Train state (x, y)
            else
                let share = DataParallel.share comm (x.size 0)
                Nj.purifyWith (Options.seeded (DataParallel.seed comm seed) |> Options.donating) model.TrainShare state
                    (x.narrow(0L, share.Start, share.Length), y.narrow(0L, share.Start, share.Length), share.Weight)
        state <- next
        lossSum <- lossSum + float (metrics.Loss.item<float32> ())
        correct <- correct + metrics.Correct.item<int64> ()
        steps <- steps + 1
        onStep ()
    let correct = if isNull comm then float correct else DataParallel.sum comm (float correct)
    state, lossSum / float steps, correct / float (split.Labels.size 0)

/// Trains as the settings say and returns the final state and the test accuracy. Under
/// mpirun the ranks train data-parallel: each takes its share of every batch, the optimizer
/// averages their gradients, and only rank 0 prints and saves.
let run (settings: Settings) : State * float =
    let comm = communicator ()
    // mpirun relays output through its own pipes, where a live progress bar renders badly.
    let settings = if isNull comm then settings else { settings with Plain = true }
    let root = isNull comm || comm.IsRoot
    let say fmt = Printf.kprintf (fun line -> if root && not settings.Quiet then printfn "%s" line) fmt
    torch.set_num_threads settings.Threads
    let trainSplit, testSplit = Data.loadBoth (if settings.DataFolder = "" then Data.defaultFolder () else settings.DataFolder)
    let images = trainSplit.Labels.size 0
    let ranks = if isNull comm then 1L else int64 comm.Size
    if ranks > 1L && images % int64 settings.BatchSize <> 0L && images % int64 settings.BatchSize < ranks then
        raise (ArgumentException(sprintf "--batch-size %d leaves a last batch of %d images, too few to share among %d ranks; choose another batch size." settings.BatchSize (images % int64 settings.BatchSize) ranks))
    let perEpoch = stepsPerEpoch settings images
    let model = makeModel settings (perEpoch * settings.Epochs) comm
    let sample = trainSplit.Images.narrow(0L, 0L, 2L), trainSplit.Labels.narrow(0L, 0L, 2L)
    let initial = Nj.init settings.Seed model.Train State.empty sample
    let state, firstEpoch =
        match settings.Resume with
        | Some path when root -> Resume.load path initial (Resume.describe settings.Kind settings.Epochs)
        | _ -> initial, 1
    // Under mpirun every rank starts from rank 0's state and epoch (a resumed run: the
    // checkpoint rank 0 read, so only rank 0 needs the file).
    let state, firstEpoch =
        if isNull comm then state, firstEpoch
        else
            let epoch = torch.tensor [| int64 firstEpoch |]
            comm.Broadcast(epoch, 0)
            DataParallel.broadcast comm state, int (epoch.ToInt64())
    let lastEpoch = defaultArg settings.StopAfter settings.Epochs
    say "Training %A on %d images (%d steps per epoch), testing on %d." settings.Kind images perEpoch (testSplit.Labels.size 0)
    if not (isNull comm) then say "Data-parallel on %d ranks (%s): each takes its share of every batch of %d." comm.Size comm.Library settings.BatchSize
    // Training time: the epochs, from the first step (with its warm-up) to the last.
    let clock = Stopwatch.StartNew()
    let report epoch loss trainAcc =
        sprintf "epoch %2d/%d  loss %.4f  train accuracy %.4f  (%.1f s)" epoch settings.Epochs loss trainAcc clock.Elapsed.TotalSeconds
    let epochs = [ firstEpoch .. lastEpoch ]
    let final =
        if settings.Plain || settings.Quiet then
            epochs
            |> List.fold (fun state epoch ->
                let next, loss, acc = runEpoch model settings comm epoch state trainSplit ignore
                say "%s" (report epoch loss acc)
                next) state
        else
            AnsiConsole.Progress().Start(fun ctx ->
                let task = ctx.AddTask("training", maxValue = float (perEpoch * epochs.Length))
                epochs
                |> List.fold (fun state epoch ->
                    let next, loss, acc = runEpoch model settings comm epoch state trainSplit (fun () -> task.Increment 1.0)
                    task.Description <- sprintf "epoch %d, loss %.4f" epoch loss
                    AnsiConsole.MarkupLine(Markup.Escape(report epoch loss acc))
                    next) state)
    let trainingSeconds = clock.Elapsed.TotalSeconds
    say ""
    say "%s" (Summary.renderOf model final)
    say "training took %.1f s" trainingSeconds
    if not (isNull comm) then
        DataParallel.checkInSync comm final
        let stats = comm.Statistics
        say "All ranks hold the same state. Collectives: %d, %.2f s on rank 0 (%.1f%% of the training)." stats.Calls stats.Elapsed.TotalSeconds (100.0 * stats.Elapsed.TotalSeconds / trainingSeconds)
    if root then settings.Save |> Option.iter (fun path -> Resume.save path final lastEpoch (Resume.describe settings.Kind settings.Epochs))
    final, accuracy model final testSplit

/// Loads a classifier written by --save: a function from images [n; 64] with pixels in [0, 1] to
/// the digits it predicts [n] (dropout off). Other programs, such as the GAN, score images with it.
let loadClassifier (path: string) : Func<torch.Tensor, torch.Tensor> =
    let kind =
        match Resume.modelOf path with
        | "cnn" -> Cnn
        | "mlp" -> Mlp
        | other -> invalidArg "path" (sprintf "Checkpoint '%s' holds a model '%s' this trainer does not know." path other)
    let model = makeModel { Settings.Default with Kind = kind } 1 null
    let expected = Nj.init 0L model.Train State.empty (torch.zeros(2L, 64L), torch.zeros([| 2L |], dtype = torch.int64))
    let state, _ = Checkpoint.loadInto expected path
    let predict = Nj.purify model.Predict
    Func<_, _>(fun images -> snd (predict state images))

[<EntryPoint>]
let main argv =
    let parser = ArgumentParser.Create<Arguments>(programName = "digits")
    try
        let _, testAccuracy = run (settingsOf (parser.ParseCommandLine argv))
        let comm = communicator ()
        if isNull comm || comm.IsRoot then printfn "test accuracy: %.4f" testAccuracy
        0
    with
    | :? ArguParseException as e ->
        eprintfn "%s" e.Message
        2
    | :? ArgumentException as e ->
        eprintfn "digits: %s" e.Message
        eprintfn "%s" (parser.PrintUsage())
        2
    | :? System.IO.IOException
    | :? InvalidOperationException as e ->
        // Missing, corrupted or mismatching checkpoints and data files.
        eprintfn "digits: %s" e.Message
        1
