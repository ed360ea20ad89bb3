using static TorchSharp.torch;

namespace Gan;

/// <summary>How the networks see a digit label.</summary>
public static class Labels
{
    /// <summary>The labels [n] (int64 digits) as one-hot float32 rows [n, 10].</summary>
    /// <param name="labels">The digits.</param>
    /// <returns>The one-hot rows.</returns>
    public static Tensor OneHot(Tensor labels) => nn.functional.one_hot(labels, GanOptions.Classes).to_type(ScalarType.Float32);

    /// <summary>The digits 0 to 9, each repeated <paramref name="perDigit"/> times in a row: 0, 0, ..., 1, 1, ....</summary>
    /// <param name="perDigit">How many of each digit.</param>
    /// <returns>The labels [10 * perDigit], int64.</returns>
    public static Tensor Evenly(int perDigit) => arange(GanOptions.Classes).repeat_interleave(perDigit);
}
