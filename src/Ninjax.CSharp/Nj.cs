using Microsoft.FSharp.Core;
using static TorchSharp.torch;

namespace Ninjax.CSharp;

/// <summary>Ninjax for C#: purify impure functions (<c>Pure</c>, <c>Init</c>), differentiate with respect to state
/// entries (<c>Grad</c>), and reach the state of the running call (<c>Rng</c>, <c>Creating</c>, <c>State</c>, <c>Get</c>,
/// <c>Put</c>, <c>Scope</c>). Every member forwards to the F# API of Ninjax.Fs, so both languages mean the same thing
/// and raise the same errors. Modules are written by subclassing <see cref="Module"/>.</summary>
public static partial class Nj
{
    /// <summary>A fresh random generator derived from the call's seed and a counter (ninjax's <c>rng</c>); released when
    /// the purified call returns. Raises InvalidOperationException when the call was given no seed.</summary>
    /// <returns>A CPU generator to pass to TorchSharp's random functions.</returns>
    public static Generator Rng() => NjModule.rng();

    /// <summary>A fresh random generator when the current call has a seed, null otherwise (ninjax's
    /// <c>seed(optional=True)</c>), for code that randomizes only when it can.</summary>
    /// <returns>A CPU generator, or null when the call was given no seed.</returns>
    public static Generator? TryRng()
    {
        var g = NjModule.tryRng();
        return Microsoft.FSharp.Core.FSharpOption<Generator>.get_IsSome(g) ? g.Value : null;
    }

    /// <summary>True while the current call may create entries (ninjax's <c>creating</c>), as during <c>Init</c>.</summary>
    public static bool Creating => NjModule.creating();

    /// <summary>True when the current call owns <paramref name="tensor"/> and may update it in place: the call donates
    /// its state (<c>donate: true</c>), runs outside any gradient and may modify, and the tensor is what exactly one
    /// entry of the donated state holds (contiguous, not float16 or bfloat16). Then update it in place
    /// (<c>old.lerp_(x, w)</c>) and put it back; otherwise compute a new tensor (<c>lerp(old, x, w)</c>). The results
    /// are the same bit for bit; only the allocations differ. A true answer counts as a write in place: should the
    /// call fail afterwards, the donated state is marked as used.</summary>
    /// <param name="tensor">A tensor read from the state in this call.</param>
    /// <returns>Whether an in-place update of the tensor is allowed.</returns>
    public static bool MayUpdateInPlace(Tensor tensor) => NjModule.mayUpdateInPlace(tensor);

    /// <summary>The whole state of the current call as it is now (ninjax's <c>state</c>).</summary>
    public static State State => NjModule.state();

    /// <summary>Reads the entry <paramref name="name"/> of the current scope, creating it with <paramref name="create"/> on first use.</summary>
    /// <param name="name">The entry's key relative to the current scope.</param>
    /// <param name="create">Makes the initial value; runs only when the entry does not exist.</param>
    /// <returns>The entry's value.</returns>
    public static Tensor Get(string name, Func<Tensor> create)
    {
        ArgumentNullException.ThrowIfNull(create);
        return NjModule.get(name, FuncConvert.FromFunc(create));
    }

    /// <summary>Reads the existing entry <paramref name="name"/> of the current scope.</summary>
    /// <param name="name">The entry's key relative to the current scope.</param>
    /// <returns>The entry's value.</returns>
    public static Tensor Read(string name) => NjModule.read(name);

    /// <summary>Writes the entry <paramref name="name"/> of the current scope; existing entries keep their shape and dtype.</summary>
    /// <param name="name">The entry's key relative to the current scope.</param>
    /// <param name="value">The new value.</param>
    /// <returns>The value written.</returns>
    public static Tensor Put(string name, Tensor value) => NjModule.put(name, value);

    /// <summary>Runs <paramref name="function"/> one scope deeper: names it reads and writes resolve under <paramref name="name"/>.</summary>
    /// <typeparam name="T">What the function returns.</typeparam>
    /// <param name="name">The scope's name.</param>
    /// <param name="function">The impure code to run in the scope.</param>
    /// <returns>What the function returns.</returns>
    public static T Scope<T>(string name, Func<T> function)
    {
        ArgumentNullException.ThrowIfNull(function);
        return NjModule.scope(name, FuncConvert.FromFunc(function));
    }

    /// <summary>Runs <paramref name="action"/> one scope deeper: names it reads and writes resolve under <paramref name="name"/>.</summary>
    /// <param name="name">The scope's name.</param>
    /// <param name="action">The impure code to run in the scope.</param>
    public static void Scope(string name, Action action)
    {
        ArgumentNullException.ThrowIfNull(action);
        NjModule.scope(name, FuncConvert.FromAction(action));
    }
}
