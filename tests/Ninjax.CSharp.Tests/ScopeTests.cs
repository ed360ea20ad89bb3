using Xunit;
using static Ninjax.CSharp.Tests.Check;
using static TorchSharp.torch;

namespace Ninjax.CSharp.Tests;

/// <summary>ninjax's test_scopes and test_basic in C#: a constructor and methods that run in the module's scope.</summary>
public sealed class ScopedModel : Module
{
    /// <summary>A model whose constructor builds a variable by name in its own scope.</summary>
    public ScopedModel(string name) : base(name) => Bar = Scoped(() => new Variable(() => tensor(5f), "bar"));

    /// <summary>Built in the constructor: lands at <c>name/bar</c>.</summary>
    public Variable Bar { get; }

    /// <summary>The path of the submodule made inside a scope of the method.</summary>
    public string SeenPath { get; private set; } = "";

    /// <summary>A method in the module's scope with a nested scope.</summary>
    public Tensor Method() => Scoped(() =>
    {
        Nj.Scope("scope", () =>
        {
            var sub = Sub("sub1", () => new Variable(() => tensor(5f)));
            sub.Read();
            SeenPath = sub.Path;
        });
        return Value("value", () => tensor(5f)) + Bar.Read();
    });

    /// <summary>A method with a method-level scope, as ninjax's <c>@nj.scope('method2')</c>.</summary>
    public Tensor Method2() => Scoped("method2", () => Sub("sub2", () => new Variable(() => tensor(2f))).Read());
}

/// <summary>Name scopes from C#: in constructors, in methods, and outside purified calls.</summary>
public class ScopeTests
{
    [Fact]
    public void Constructors_and_methods_run_in_the_modules_scope()
    {
        var foo = new ScopedModel("foo");
        Assert.Equal("foo/bar", foo.Bar.Path);
        var state = Nj.Init(foo.Method)(States.Empty, seed: 0);
        state = Nj.Init(foo.Method2)(state, seed: 0);
        Assert.Equal("foo/scope/sub1", foo.SeenPath);
        Assert.Equal(new[] { "foo/bar/value", "foo/method2/sub2/value", "foo/scope/sub1/value", "foo/value" }, state.Keys);
        var (_, two) = Nj.Pure(foo.Method2)(state);
        SameTensor(tensor(2f), two, "read back");
    }

    [Fact]
    public void Nj_Scope_works_outside_purified_calls_and_places_modules_built_in_it()
    {
        var counter = Nj.Scope("outer", () => Nj.Scope("inner", () => new Counter("c")));
        Assert.Equal("outer/inner/c", counter.Path);
        var state = Nj.Init(counter.Increment)(States.Empty);
        Assert.Equal(new[] { "outer/inner/c/count" }, state.Keys);
    }
}

/// <summary>ninjax's scan options from C#: reverse, and a length without xs.</summary>
public class ScanOptionsTests
{
    [Fact]
    public void Scan_reverses_and_runs_over_a_length()
    {
        var (_, (carry, ys)) = Nj.Pure(() => Nj.Scan((Tensor c, Tensor x) => { var next = c + x; return (next, next); },
            tensor(0L), tensor(new long[] { 1, 2, 3 }), reverse: true))(States.Empty);
        Assert.Equal(6L, carry.item<long>());
        Assert.Equal(new long[] { 6, 5, 3 }, ys.data<long>().ToArray());
        var (_, (seen, outputs)) = Nj.Pure(() => Nj.ScanLength((string s, long i) => (s + i, tensor((float)i)), "", 3, reverse: true))(States.Empty);
        Assert.Equal("210", seen);
        SameTensor(tensor(new float[] { 0, 1, 2 }), outputs, "outputs in index order");
    }
}
