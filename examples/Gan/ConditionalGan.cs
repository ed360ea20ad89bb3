using Ninjax;
using Ninjax.CSharp;
using static TorchSharp.torch;

namespace Gan;

/// <summary>What one step of the GAN reports (scalars, detached).</summary>
/// <param name="DiscriminatorLoss">The discriminator's loss before its update.</param>
/// <param name="GeneratorLoss">The generator's loss before its update.</param>
public readonly record struct GanMetrics(Tensor DiscriminatorLoss, Tensor GeneratorLoss);

/// <summary>A conditional GAN on the 8x8 digits: a generator and a discriminator, each a module with its own optimizer
/// and <c>Train</c>, and an exponential moving average of the generator's network, which is what
/// <see cref="Sample"/> draws from. <see cref="Train"/> takes one step of both.</summary>
public sealed class ConditionalGan : Module
{
    private readonly GanOptions options;

    /// <summary>A GAN with its entries under <paramref name="name"/>: <c>gan/generator/...</c>,
    /// <c>gan/discriminator/...</c> and <c>gan/average/...</c>.</summary>
    /// <param name="options">The hyperparameters; the defaults when left out.</param>
    /// <param name="name">The name of the top-level module.</param>
    public ConditionalGan(GanOptions? options = null, string name = "gan") : base(name)
    {
        this.options = options ?? GanOptions.Default;
        Generator = Sub("generator", () => new Generator(this.options));
        Discriminator = Sub("discriminator", () => new Discriminator(this.options));
        Average = Sub("average", () => new GeneratorNet(this.options));
    }

    /// <summary>The generator, with its optimizer.</summary>
    public Generator Generator { get; }

    /// <summary>The discriminator, with its optimizer.</summary>
    public Discriminator Discriminator { get; }

    /// <summary>The moving average of the generator's network, which samples.</summary>
    public GeneratorNet Average { get; }

    /// <summary>One training step on a batch of real images: the generator's step (through the discriminator, which it
    /// does not update), the discriminator's step on the real images and the generator's output, and the moving
    /// average. Draws the noise from <see cref="Nj.Rng"/>: give each call its own seed.</summary>
    /// <param name="images">Real images [n, 64], pixels in [-1, 1].</param>
    /// <param name="labels">Their digits [n]; the generator is asked for the same digits.</param>
    /// <returns>Both losses.</returns>
    public GanMetrics Train(Tensor images, Tensor labels)
    {
        var noise = randn([images.size(0), options.NoiseSize], generator: Nj.Rng());
        // The labels' one-hot rows, made once for the step's four forward passes.
        var digits = Condition.Of(labels);
        var (generator, fake) = Generator.Train(noise, digits, Discriminator);
        var discriminator = Discriminator.Train(images, fake, digits);
        MovingAverage.Update(Average, Generator.Net, options.EmaDecay);
        return new GanMetrics(discriminator.Loss, generator.Loss);
    }

    /// <summary>Images of the digits <paramref name="labels"/> from the moving average of the generator, pixels in
    /// [-1, 1]; the noise comes from <see cref="Nj.Rng"/>.</summary>
    /// <param name="labels">The digits to draw [n].</param>
    /// <returns>The images [n, 64].</returns>
    public Tensor Sample(Tensor labels)
    {
        using var _ = no_grad();
        var noise = randn([labels.size(0), options.NoiseSize], generator: Nj.Rng());
        return Average.Forward(noise, Condition.Of(labels), training: false);
    }
}
