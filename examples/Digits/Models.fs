/// Digit classifiers written in the seed's pattern: a model module with its own optimizer and
/// Train method, purified once and called in a loop.
module Digits.Models

open TorchSharp
open Ninjax

/// What one training step reports.
type StepMetrics = { Loss: torch.Tensor; GradNorm: torch.Tensor; Correct: torch.Tensor }

/// The parts every digits model shares: a loss, an accuracy count and a Train method that
/// minimises the loss with the model's own optimizer, data-parallel across the ranks of
/// <c>comm</c> when it is not null. Training uses cross-entropy with label smoothing (the target
/// puts labelSmoothing of its weight evenly on all ten classes).
[<AbstractClass>]
type Classifier(optimizer: GradientTransformation, labelSmoothing: float, name: string, comm: Communicator) as this =
    inherit Module(name)
    let opt = this.Sub("opt", fun () -> Optimizer(optimizer, dataParallel = comm))

    /// Logits [batch; 10] for images [batch; 64]; training turns dropout on.
    abstract Logits: x: torch.Tensor * training: bool -> torch.Tensor

    /// The modules whose parameters training updates.
    abstract Trainable: Target list

    /// Mean cross-entropy (label-smoothed in training) and the number of correct predictions.
    member this.Loss(x: torch.Tensor, y: torch.Tensor, training: bool) =
        let logits = this.Logits(x, training)
        let smoothing = if training then labelSmoothing else 0.0
        torch.nn.functional.cross_entropy (logits, y, label_smoothing = smoothing), logits.argmax(1L).eq(y).sum()

    /// One optimizer step on a batch (dropout on: give the purified call a fresh seed per step).
    member this.Train(x: torch.Tensor, y: torch.Tensor) : StepMetrics = this.TrainShare(x, y, 1.0)

    /// One data-parallel step on this rank's share of a batch, its mean loss scaled by the
    /// share's weight (DataParallel.share), so that the ranks' averaged gradient is the whole
    /// batch's also when the shares differ in size. Correct counts this rank's share only.
    member this.TrainShare(x: torch.Tensor, y: torch.Tensor, weight: float) : StepMetrics =
        let loss (x, y) =
            let value, correct = this.Loss(x, y, true)
            (if weight = 1.0 then value else value * weight), correct
        let metrics, correct = opt.MinimizeAux(loss, this.Trainable, (x, y))
        { Loss = metrics.Loss; GradNorm = metrics.GradNorm; Correct = correct }

    /// The number of correct predictions on a batch (dropout off).
    member this.Correct(x: torch.Tensor, y: torch.Tensor) : torch.Tensor =
        use _ = torch.no_grad ()
        snd (this.Loss(x, y, false))

    /// The predicted digit of each image (dropout off).
    member this.Predict(x: torch.Tensor) : torch.Tensor =
        use _ = torch.no_grad ()
        this.Logits(x, false).argmax 1L

/// A multi-layer perceptron 64-h1-...-10 with ReLU.
type Mlp(hidden: int list, optimizer: GradientTransformation, labelSmoothing: float, name: string, ?comm: Communicator) as this =
    inherit Classifier(optimizer, labelSmoothing, name, Option.toObj comm)
    let layers = (hidden @ [ 10 ]) |> List.mapi (fun i units -> this.Sub(sprintf "dense%d" i, fun () -> Dense units))

    /// The MLP with Adam at a constant learning rate and plain cross-entropy (the benchmark's model).
    new(hidden: int list, learningRate: float, name: string, ?comm: Communicator) = Mlp(hidden, Optax.adam learningRate, 0.0, name, ?comm = comm)

    override _.Logits(x, _) =
        let last = List.length layers - 1
        layers |> List.indexed |> List.fold (fun h (i, layer) -> let z = layer.Forward h in if i < last then torch.nn.functional.relu z else z) x

    override _.Trainable = layers |> List.map (fun l -> Target.Module l)

/// A convolutional network for 8x8 images: two padded 3x3 convolutions (channels, then twice as
/// many), 2x2 max pooling, then a dense head, with dropout before each dense layer.
type Cnn(channels: int, dropoutRate: float, optimizer: GradientTransformation, labelSmoothing: float, name: string, ?comm: Communicator) as this =
    inherit Classifier(optimizer, labelSmoothing, name, Option.toObj comm)
    let conv1 = this.Sub("conv1", fun () -> Conv2D(channels, 3, padding = 1))
    let conv2 = this.Sub("conv2", fun () -> Conv2D(2 * channels, 3, padding = 1))
    let dense = this.Sub("dense", fun () -> Dense 128)
    let head = this.Sub("head", fun () -> Dense 10)

    override _.Logits(x, training) =
        let drop = Ops.dropout dropoutRate training
        let img = x.view(-1L, 1L, 8L, 8L)
        let h = torch.nn.functional.relu (conv1.Forward img)
        let h = Ops.maxPool2d 2 (torch.nn.functional.relu (conv2.Forward h))
        let h = torch.nn.functional.relu (dense.Forward(drop (h.flatten 1L)))
        head.Forward(drop h)

    override _.Trainable = [ Target.Module conv1; Target.Module conv2; Target.Module dense; Target.Module head ]
