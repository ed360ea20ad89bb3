using static TorchSharp.torch;

namespace Gan;

/// <summary>Lays 8x8 images out as one greyscale picture: a grid of cells, each image enlarged, with a gap between
/// cells.</summary>
public static class SampleGrid
{
    /// <summary>The pixels of a grid of <paramref name="rows"/> x <paramref name="columns"/> images, row after row.</summary>
    /// <param name="images">Images [rows * columns, 64], pixels in [0, 1] (clamped); image i goes to row i / columns.</param>
    /// <param name="rows">Rows of the grid.</param>
    /// <param name="columns">Columns of the grid.</param>
    /// <param name="scale">How many screen pixels each image pixel covers along each axis.</param>
    /// <param name="gap">Black pixels between cells and around the grid.</param>
    /// <returns>The picture's width, height and pixels (row-major bytes, 0 black to 255 white).</returns>
    public static (int Width, int Height, byte[] Pixels) Render(Tensor images, int rows, int columns, int scale = 4, int gap = 2)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (rows <= 0 || columns <= 0 || scale <= 0 || gap < 0)
            throw new ArgumentOutOfRangeException(nameof(rows), $"The grid needs positive rows, columns and scale and a gap of 0 or more; they were {rows}, {columns}, {scale} and {gap}.");
        if (images.Dimensions != 2 || images.size(0) != rows * columns || images.size(1) != 64)
            throw new ArgumentException($"A {rows}x{columns} grid of 8x8 images needs images of shape [{rows * columns}, 64]; they have shape [{string.Join(", ", images.shape)}].", nameof(images));
        var values = (images.detach().clamp(0, 1) * 255).round().to_type(ScalarType.Byte).contiguous().data<byte>().ToArray();
        var cell = 8 * scale;
        var width = columns * (cell + gap) + gap;
        var height = rows * (cell + gap) + gap;
        var pixels = new byte[width * height];
        for (var i = 0; i < rows * columns; i++)
        {
            var top = gap + i / columns * (cell + gap);
            var left = gap + i % columns * (cell + gap);
            for (var y = 0; y < cell; y++)
                for (var x = 0; x < cell; x++)
                    pixels[(top + y) * width + left + x] = values[i * 64 + y / scale * 8 + x / scale];
        }
        return (width, height, pixels);
    }
}
