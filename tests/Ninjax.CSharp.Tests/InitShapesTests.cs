using Xunit;
using static TorchSharp.torch;

namespace Ninjax.CSharp.Tests;

/// <summary>The abstract init from C#: shapes and dtypes without the training step.</summary>
public class InitShapesTests
{
    [Fact]
    public void InitShapes_gives_Inits_keys_shapes_and_dtypes_on_the_meta_device()
    {
        var model = new Quickstart.MyModel(3, name: "shapes");
        var real = Nj.Init(model.Train)(States.Empty, ones(4, 32), ones(4, 3), seed: 0);
        // Meta tensors stand for inputs of their shape: no data is needed.
        var shapes = Nj.InitShapes(model.Train)(States.Empty, empty(new long[] { 1, 32 }, device: META), empty(new long[] { 1, 3 }, device: META), seed: 0);
        Assert.Equal(real.Keys, shapes.Keys);
        foreach (var key in real.Keys)
        {
            Assert.Equal(real[key].shape, shapes[key].shape);
            Assert.Equal(real[key].dtype, shapes[key].dtype);
            Assert.Equal(TorchSharp.DeviceType.META, shapes[key].device_type);
        }
    }
}
