namespace Gan;

/// <summary>The hyperparameters of the conditional GAN, with defaults that reach a conditional accuracy above 0.9 on the
/// 8x8 digits in a few thousand steps.</summary>
/// <param name="NoiseSize">The length of the generator's noise vector.</param>
/// <param name="Hidden">The width of the hidden layers of both networks.</param>
/// <param name="LearningRate">Adam's learning rate, for both optimizers.</param>
/// <param name="Beta1">Adam's first-moment decay (0.5, as GANs usually train).</param>
/// <param name="EmaDecay">How much of the moving average of the generator each step keeps.</param>
public sealed record GanOptions(
    int NoiseSize = 32,
    int Hidden = 256,
    double LearningRate = 5e-4,
    double Beta1 = 0.5,
    double EmaDecay = 0.995)
{
    /// <summary>The defaults.</summary>
    public static GanOptions Default { get; } = new();

    /// <summary>The number of classes (digits) the GAN is conditioned on.</summary>
    public const int Classes = 10;

    /// <summary>The pixels of one image (8x8).</summary>
    public const int Pixels = 64;
}
