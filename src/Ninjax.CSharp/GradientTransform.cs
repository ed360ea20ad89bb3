namespace Ninjax.CSharp;

/// <summary>A gradient transformation (an optimizer such as Adam, or a step of one such as gradient clipping), made by
/// <see cref="Optimizers"/> and used by an <see cref="OptimizerModule"/>. Opaque to C#: it holds the Ninjax.Fs
/// transformation, whose init and update functions are pure functions over states.</summary>
public sealed class GradientTransform
{
    internal GradientTransform(GradientTransformation transformation) => Transformation = transformation;

    /// <summary>The F# transformation this wraps.</summary>
    internal GradientTransformation Transformation { get; }

    /// <summary>The F# transformation of <paramref name="transform"/>, with a null check naming the parameter.</summary>
    internal static GradientTransformation Unwrap(GradientTransform? transform, string parameter)
    {
        ArgumentNullException.ThrowIfNull(transform, parameter);
        return transform.Transformation;
    }
}
