using Ninjax;
using Ninjax.CSharp;
using TorchSharp;
using static TorchSharp.torch;

namespace Gan;

/// <summary>What one epoch of GAN training reports.</summary>
/// <param name="Epoch">The epoch, from 1.</param>
/// <param name="DiscriminatorLoss">The discriminator's mean loss over the epoch.</param>
/// <param name="GeneratorLoss">The generator's mean loss over the epoch.</param>
public readonly record struct EpochReport(int Epoch, double DiscriminatorLoss, double GeneratorLoss);

/// <summary>The training loop of the conditional GAN, the sampling, and the checkpoint of its state.</summary>
public static class GanTraining
{
    /// <summary>The seed of one training step: its noise is drawn from <see cref="Nj.Rng"/>, and a purified call given
    /// the same seed draws the same numbers, so each step gets a seed of its own. It depends on the run's seed and the
    /// step's place in the run only.</summary>
    /// <param name="seed">The run's seed.</param>
    /// <param name="step">The step, from 0.</param>
    /// <returns>The seed of the step's purified call.</returns>
    public static long StepSeed(long seed, long step) => seed * 4_294_967_296L + step;

    /// <summary>Images [n, 64] in [0, 1] (as the digits data holds them) rescaled to the GAN's [-1, 1].</summary>
    /// <param name="images">The images.</param>
    /// <returns>The rescaled images.</returns>
    public static Tensor ToGan(Tensor images) => images * 2 - 1;

    /// <summary>Images in the GAN's [-1, 1] rescaled to [0, 1].</summary>
    /// <param name="images">The images.</param>
    /// <returns>The rescaled images.</returns>
    public static Tensor FromGan(Tensor images) => (images + 1) / 2;

    /// <summary>The state a GAN starts from: every entry created (parameters, optimizer moments, the moving average)
    /// with the seed's draws.</summary>
    /// <param name="gan">The model.</param>
    /// <param name="images">Some real images in [-1, 1] (two or more; their values are not kept).</param>
    /// <param name="labels">Their digits.</param>
    /// <param name="seed">The seed of the initialisation.</param>
    /// <returns>The initial state.</returns>
    public static State Init(ConditionalGan gan, Tensor images, Tensor labels, long seed) =>
        Nj.Init(gan.Train)(States.Empty, images[..2], labels[..2], seed: seed);

    /// <summary>Trains the GAN for <paramref name="epochs"/> passes over the images, shuffled each epoch, one step per
    /// batch, each state handed over (donated) to the next step.</summary>
    /// <param name="gan">The model.</param>
    /// <param name="state">The state to start from, such as <see cref="Init"/>'s.</param>
    /// <param name="images">Real images [n, 64] in [-1, 1].</param>
    /// <param name="labels">Their digits [n].</param>
    /// <param name="epochs">Passes over the images.</param>
    /// <param name="batchSize">Images per step.</param>
    /// <param name="seed">The seed of the shuffles and of every step's noise.</param>
    /// <param name="onStep">Called after every step.</param>
    /// <param name="onEpoch">Called after every epoch with its mean losses.</param>
    /// <returns>The trained state.</returns>
    public static State Train(
        ConditionalGan gan, State state, Tensor images, Tensor labels, int epochs, int batchSize, long seed,
        Action? onStep = null, Action<EpochReport>? onEpoch = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(epochs);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);
        // Purified once; every call hands its state to the next, so the optimizers update in place.
        var train = Nj.Pure(gan.Train, donate: true);
        var n = images.size(0);
        long step = 0;
        for (var epoch = 1; epoch <= epochs; epoch++)
        {
            using var shuffle = new torch.Generator((ulong)(seed * 1000 + epoch));
            var order = randperm(n, generator: shuffle);
            double discriminatorLoss = 0, generatorLoss = 0;
            var steps = 0;
            for (long start = 0; start + batchSize <= n; start += batchSize)
            {
                var index = order.narrow(0, start, batchSize);
                (state, var metrics) = train(state, images.index_select(0, index), labels.index_select(0, index), seed: StepSeed(seed, step));
                discriminatorLoss += metrics.DiscriminatorLoss.ToDouble();
                generatorLoss += metrics.GeneratorLoss.ToDouble();
                steps++;
                step++;
                onStep?.Invoke();
            }
            onEpoch?.Invoke(new EpochReport(epoch, discriminatorLoss / steps, generatorLoss / steps));
        }
        return state;
    }

    /// <summary>Draws <paramref name="perDigit"/> images of each digit from the moving average of the generator.</summary>
    /// <param name="gan">The model.</param>
    /// <param name="state">A trained state.</param>
    /// <param name="perDigit">Images per digit.</param>
    /// <param name="seed">The seed of the noise.</param>
    /// <returns>The images [10 * perDigit, 64] in [0, 1], the zeros first, and the digits asked for.</returns>
    public static (Tensor Images, Tensor Labels) SampleEvenly(ConditionalGan gan, State state, int perDigit, long seed)
    {
        var labels = Labels.Evenly(perDigit);
        var (_, images) = Nj.Pure(gan.Sample)(state, labels, seed: seed);
        return (FromGan(images), labels);
    }

    /// <summary>The fraction of the images a classifier assigns to the digit they were asked to show.</summary>
    /// <param name="classify">Predicted digits [n] for images [n, 64] in [0, 1].</param>
    /// <param name="images">The images.</param>
    /// <param name="labels">The digits asked for.</param>
    /// <returns>The conditional accuracy.</returns>
    public static double ConditionalAccuracy(Func<Tensor, Tensor> classify, Tensor images, Tensor labels) =>
        classify(images).eq(labels).to_type(ScalarType.Float64).mean().ToDouble();

    /// <summary>Writes the whole state (both networks, both optimizers, the moving average) and the number of steps
    /// trained to a safetensors checkpoint.</summary>
    /// <param name="path">The file.</param>
    /// <param name="state">The state.</param>
    /// <param name="steps">The steps trained.</param>
    public static void Save(string path, State state, long steps)
    {
        var folder = Path.GetDirectoryName(Path.GetFullPath(path));
        if (folder is not null)
            Directory.CreateDirectory(folder);
        Checkpoints.Save(path, state, step: steps, strings: new Dictionary<string, string> { ["trainer"] = "gan" });
    }

    /// <summary>Reads a checkpoint written by <see cref="Save"/> into a fresh state for <paramref name="gan"/>: every
    /// key, shape and dtype is checked against what the model creates, and all mismatches are listed in one error.</summary>
    /// <param name="path">The file.</param>
    /// <param name="gan">A model with the options the checkpoint was trained with.</param>
    /// <returns>The state.</returns>
    public static State Load(string path, ConditionalGan gan)
    {
        var expected = Init(gan, zeros(2, GanOptions.Pixels), zeros(2, dtype: ScalarType.Int64), seed: 0);
        return Checkpoints.LoadInto(expected, path).State;
    }
}
