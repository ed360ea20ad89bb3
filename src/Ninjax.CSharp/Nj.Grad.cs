using Microsoft.FSharp.Collections;
using Microsoft.FSharp.Core;
using static TorchSharp.torch;

namespace Ninjax.CSharp;

public static partial class Nj
{
    /// <summary>Differentiates a scalar loss with respect to state entries (ninjax's <c>grad</c>) inside a purified call:
    /// <c>var (loss, ps, grads) = Nj.Grad(() => Loss(x, y), h1, h2, $"{Path}/bias")</c>. Writes the loss makes are kept.</summary>
    /// <param name="loss">The impure loss function; it must read every targeted entry.</param>
    /// <param name="targets">What to differentiate with respect to: modules, string keys (a key selects itself and every key under it) and <see cref="System.Text.RegularExpressions.Regex"/> patterns.</param>
    /// <returns>The loss, the entries differentiated (absolute keys) and their gradients (keyed alike).</returns>
    public static (Tensor Loss, State Params, State Grads) Grad(Func<Tensor> loss, params object[] targets)
    {
        ArgumentNullException.ThrowIfNull(loss);
        var result = NjModule.grad(FuncConvert.FromFunc<ValueTuple, Tensor>(_ => loss()), Targets.Of(targets), default);
        return (result.Item1, result.Item2, result.Item3);
    }

    /// <summary>Differentiates a scalar loss of 1 argument with respect to state entries, as ninjax's
    /// <c>grad(f, keys)(x, y)</c>: the result takes the loss's arguments.</summary>
    /// <typeparam name="T1">The type of the first argument.</typeparam>
    /// <param name="loss">The impure loss function; it must read every targeted entry.</param>
    /// <param name="targets">What to differentiate with respect to: modules, string keys (a key selects itself and every key under it) and <see cref="System.Text.RegularExpressions.Regex"/> patterns.</param>
    /// <returns>A function from the loss's arguments to the loss, the entries differentiated and their gradients.</returns>
    public static GradFunc<T1> Grad<T1>(Func<T1, Tensor> loss, params object[] targets)
    {
        ArgumentNullException.ThrowIfNull(loss);
        var function = FuncConvert.FromFunc<T1, Tensor>(a => loss(a));
        var resolved = Targets.Of(targets);
        return (arg1) =>
        {
            var result = NjModule.grad(function, resolved, arg1);
            return (result.Item1, result.Item2, result.Item3);
        };
    }

    /// <summary>Differentiates a scalar loss of 2 arguments with respect to state entries, as ninjax's
    /// <c>grad(f, keys)(x, y)</c>: the result takes the loss's arguments.</summary>
    /// <typeparam name="T1">The type of the first argument.</typeparam>
    /// <typeparam name="T2">The type of the second argument.</typeparam>
    /// <param name="loss">The impure loss function; it must read every targeted entry.</param>
    /// <param name="targets">What to differentiate with respect to: modules, string keys (a key selects itself and every key under it) and <see cref="System.Text.RegularExpressions.Regex"/> patterns.</param>
    /// <returns>A function from the loss's arguments to the loss, the entries differentiated and their gradients.</returns>
    public static GradFunc<T1, T2> Grad<T1, T2>(Func<T1, T2, Tensor> loss, params object[] targets)
    {
        ArgumentNullException.ThrowIfNull(loss);
        var function = FuncConvert.FromFunc<(T1, T2), Tensor>(a => loss(a.Item1, a.Item2));
        var resolved = Targets.Of(targets);
        return (arg1, arg2) =>
        {
            var result = NjModule.grad(function, resolved, (arg1, arg2));
            return (result.Item1, result.Item2, result.Item3);
        };
    }

    /// <summary>Differentiates a scalar loss of 3 arguments with respect to state entries, as ninjax's
    /// <c>grad(f, keys)(x, y)</c>: the result takes the loss's arguments.</summary>
    /// <typeparam name="T1">The type of the first argument.</typeparam>
    /// <typeparam name="T2">The type of the second argument.</typeparam>
    /// <typeparam name="T3">The type of the third argument.</typeparam>
    /// <param name="loss">The impure loss function; it must read every targeted entry.</param>
    /// <param name="targets">What to differentiate with respect to: modules, string keys (a key selects itself and every key under it) and <see cref="System.Text.RegularExpressions.Regex"/> patterns.</param>
    /// <returns>A function from the loss's arguments to the loss, the entries differentiated and their gradients.</returns>
    public static GradFunc<T1, T2, T3> Grad<T1, T2, T3>(Func<T1, T2, T3, Tensor> loss, params object[] targets)
    {
        ArgumentNullException.ThrowIfNull(loss);
        var function = FuncConvert.FromFunc<(T1, T2, T3), Tensor>(a => loss(a.Item1, a.Item2, a.Item3));
        var resolved = Targets.Of(targets);
        return (arg1, arg2, arg3) =>
        {
            var result = NjModule.grad(function, resolved, (arg1, arg2, arg3));
            return (result.Item1, result.Item2, result.Item3);
        };
    }

    /// <summary>Differentiates a scalar loss of 4 arguments with respect to state entries, as ninjax's
    /// <c>grad(f, keys)(x, y)</c>: the result takes the loss's arguments.</summary>
    /// <typeparam name="T1">The type of the first argument.</typeparam>
    /// <typeparam name="T2">The type of the second argument.</typeparam>
    /// <typeparam name="T3">The type of the third argument.</typeparam>
    /// <typeparam name="T4">The type of the fourth argument.</typeparam>
    /// <param name="loss">The impure loss function; it must read every targeted entry.</param>
    /// <param name="targets">What to differentiate with respect to: modules, string keys (a key selects itself and every key under it) and <see cref="System.Text.RegularExpressions.Regex"/> patterns.</param>
    /// <returns>A function from the loss's arguments to the loss, the entries differentiated and their gradients.</returns>
    public static GradFunc<T1, T2, T3, T4> Grad<T1, T2, T3, T4>(Func<T1, T2, T3, T4, Tensor> loss, params object[] targets)
    {
        ArgumentNullException.ThrowIfNull(loss);
        var function = FuncConvert.FromFunc<(T1, T2, T3, T4), Tensor>(a => loss(a.Item1, a.Item2, a.Item3, a.Item4));
        var resolved = Targets.Of(targets);
        return (arg1, arg2, arg3, arg4) =>
        {
            var result = NjModule.grad(function, resolved, (arg1, arg2, arg3, arg4));
            return (result.Item1, result.Item2, result.Item3);
        };
    }

    /// <summary>Differentiates a scalar loss of 1 tensor argument; lets C# infer the types from a method group: <c>Nj.Grad(Loss, h1)(x, y)</c>.</summary>
    /// <param name="loss">The impure loss function; it must read every targeted entry.</param>
    /// <param name="targets">What to differentiate with respect to: modules, string keys (a key selects itself and every key under it) and <see cref="System.Text.RegularExpressions.Regex"/> patterns.</param>
    /// <returns>A function from the loss's arguments to the loss, the entries differentiated and their gradients.</returns>
    public static GradFunc<Tensor> Grad(Func<Tensor, Tensor> loss, params object[] targets) => Grad<Tensor>(loss, targets);

    /// <summary>Differentiates a scalar loss of 2 tensor arguments; lets C# infer the types from a method group: <c>Nj.Grad(Loss, h1)(x, y)</c>.</summary>
    /// <param name="loss">The impure loss function; it must read every targeted entry.</param>
    /// <param name="targets">What to differentiate with respect to: modules, string keys (a key selects itself and every key under it) and <see cref="System.Text.RegularExpressions.Regex"/> patterns.</param>
    /// <returns>A function from the loss's arguments to the loss, the entries differentiated and their gradients.</returns>
    public static GradFunc<Tensor, Tensor> Grad(Func<Tensor, Tensor, Tensor> loss, params object[] targets) => Grad<Tensor, Tensor>(loss, targets);

    /// <summary>Differentiates a scalar loss of 3 tensor arguments; lets C# infer the types from a method group: <c>Nj.Grad(Loss, h1)(x, y)</c>.</summary>
    /// <param name="loss">The impure loss function; it must read every targeted entry.</param>
    /// <param name="targets">What to differentiate with respect to: modules, string keys (a key selects itself and every key under it) and <see cref="System.Text.RegularExpressions.Regex"/> patterns.</param>
    /// <returns>A function from the loss's arguments to the loss, the entries differentiated and their gradients.</returns>
    public static GradFunc<Tensor, Tensor, Tensor> Grad(Func<Tensor, Tensor, Tensor, Tensor> loss, params object[] targets) => Grad<Tensor, Tensor, Tensor>(loss, targets);

    /// <summary>Differentiates a scalar loss of 4 tensor arguments; lets C# infer the types from a method group: <c>Nj.Grad(Loss, h1)(x, y)</c>.</summary>
    /// <param name="loss">The impure loss function; it must read every targeted entry.</param>
    /// <param name="targets">What to differentiate with respect to: modules, string keys (a key selects itself and every key under it) and <see cref="System.Text.RegularExpressions.Regex"/> patterns.</param>
    /// <returns>A function from the loss's arguments to the loss, the entries differentiated and their gradients.</returns>
    public static GradFunc<Tensor, Tensor, Tensor, Tensor> Grad(Func<Tensor, Tensor, Tensor, Tensor, Tensor> loss, params object[] targets) => Grad<Tensor, Tensor, Tensor, Tensor>(loss, targets);

    /// <summary>Like <see cref="Grad(Func{Tensor}, object[])"/> for a function that returns an auxiliary value beside the loss.</summary>
    /// <typeparam name="TAux">What the function returns beside the loss.</typeparam>
    /// <param name="loss">The impure function returning the loss and the auxiliary value.</param>
    /// <param name="targets">What to differentiate with respect to: modules, string keys (a key selects itself and every key under it) and <see cref="System.Text.RegularExpressions.Regex"/> patterns.</param>
    /// <returns>The loss, the entries differentiated, their gradients and the auxiliary value.</returns>
    public static (Tensor Loss, State Params, State Grads, TAux Aux) GradAux<TAux>(Func<(Tensor Loss, TAux Aux)> loss, params object[] targets)
    {
        ArgumentNullException.ThrowIfNull(loss);
        var function = FuncConvert.FromFunc<ValueTuple, Tuple<Tensor, TAux>>(_ => loss().ToTuple());
        var result = NjModule.gradAux(function, Targets.Of(targets), default);
        return (result.Item1, result.Item2, result.Item3, result.Item4);
    }

    /// <summary>Like <see cref="Grad{T1}(Func{T1, Tensor}, object[])"/> for a function that returns an auxiliary value beside the loss.</summary>
    /// <typeparam name="T1">The type of the first argument.</typeparam>
    /// <typeparam name="TAux">What the function returns beside the loss.</typeparam>
    /// <param name="loss">The impure function returning the loss and the auxiliary value.</param>
    /// <param name="targets">What to differentiate with respect to: modules, string keys (a key selects itself and every key under it) and <see cref="System.Text.RegularExpressions.Regex"/> patterns.</param>
    /// <returns>A function from the loss's arguments to the loss, the entries differentiated, their gradients and the auxiliary value.</returns>
    public static GradAuxFunc<T1, TAux> GradAux<T1, TAux>(Func<T1, (Tensor Loss, TAux Aux)> loss, params object[] targets)
    {
        ArgumentNullException.ThrowIfNull(loss);
        var function = FuncConvert.FromFunc<T1, Tuple<Tensor, TAux>>(a => loss(a).ToTuple());
        var resolved = Targets.Of(targets);
        return (arg1) =>
        {
            var result = NjModule.gradAux(function, resolved, arg1);
            return (result.Item1, result.Item2, result.Item3, result.Item4);
        };
    }

    /// <summary>Like <see cref="Grad{T1, T2}(Func{T1, T2, Tensor}, object[])"/> for a function that returns an auxiliary value beside the loss.</summary>
    /// <typeparam name="T1">The type of the first argument.</typeparam>
    /// <typeparam name="T2">The type of the second argument.</typeparam>
    /// <typeparam name="TAux">What the function returns beside the loss.</typeparam>
    /// <param name="loss">The impure function returning the loss and the auxiliary value.</param>
    /// <param name="targets">What to differentiate with respect to: modules, string keys (a key selects itself and every key under it) and <see cref="System.Text.RegularExpressions.Regex"/> patterns.</param>
    /// <returns>A function from the loss's arguments to the loss, the entries differentiated, their gradients and the auxiliary value.</returns>
    public static GradAuxFunc<T1, T2, TAux> GradAux<T1, T2, TAux>(Func<T1, T2, (Tensor Loss, TAux Aux)> loss, params object[] targets)
    {
        ArgumentNullException.ThrowIfNull(loss);
        var function = FuncConvert.FromFunc<(T1, T2), Tuple<Tensor, TAux>>(a => loss(a.Item1, a.Item2).ToTuple());
        var resolved = Targets.Of(targets);
        return (arg1, arg2) =>
        {
            var result = NjModule.gradAux(function, resolved, (arg1, arg2));
            return (result.Item1, result.Item2, result.Item3, result.Item4);
        };
    }

    /// <summary>Like <see cref="Grad{T1, T2, T3}(Func{T1, T2, T3, Tensor}, object[])"/> for a function that returns an auxiliary value beside the loss.</summary>
    /// <typeparam name="T1">The type of the first argument.</typeparam>
    /// <typeparam name="T2">The type of the second argument.</typeparam>
    /// <typeparam name="T3">The type of the third argument.</typeparam>
    /// <typeparam name="TAux">What the function returns beside the loss.</typeparam>
    /// <param name="loss">The impure function returning the loss and the auxiliary value.</param>
    /// <param name="targets">What to differentiate with respect to: modules, string keys (a key selects itself and every key under it) and <see cref="System.Text.RegularExpressions.Regex"/> patterns.</param>
    /// <returns>A function from the loss's arguments to the loss, the entries differentiated, their gradients and the auxiliary value.</returns>
    public static GradAuxFunc<T1, T2, T3, TAux> GradAux<T1, T2, T3, TAux>(Func<T1, T2, T3, (Tensor Loss, TAux Aux)> loss, params object[] targets)
    {
        ArgumentNullException.ThrowIfNull(loss);
        var function = FuncConvert.FromFunc<(T1, T2, T3), Tuple<Tensor, TAux>>(a => loss(a.Item1, a.Item2, a.Item3).ToTuple());
        var resolved = Targets.Of(targets);
        return (arg1, arg2, arg3) =>
        {
            var result = NjModule.gradAux(function, resolved, (arg1, arg2, arg3));
            return (result.Item1, result.Item2, result.Item3, result.Item4);
        };
    }

    /// <summary>Like <see cref="Grad{T1, T2, T3, T4}(Func{T1, T2, T3, T4, Tensor}, object[])"/> for a function that returns an auxiliary value beside the loss.</summary>
    /// <typeparam name="T1">The type of the first argument.</typeparam>
    /// <typeparam name="T2">The type of the second argument.</typeparam>
    /// <typeparam name="T3">The type of the third argument.</typeparam>
    /// <typeparam name="T4">The type of the fourth argument.</typeparam>
    /// <typeparam name="TAux">What the function returns beside the loss.</typeparam>
    /// <param name="loss">The impure function returning the loss and the auxiliary value.</param>
    /// <param name="targets">What to differentiate with respect to: modules, string keys (a key selects itself and every key under it) and <see cref="System.Text.RegularExpressions.Regex"/> patterns.</param>
    /// <returns>A function from the loss's arguments to the loss, the entries differentiated, their gradients and the auxiliary value.</returns>
    public static GradAuxFunc<T1, T2, T3, T4, TAux> GradAux<T1, T2, T3, T4, TAux>(Func<T1, T2, T3, T4, (Tensor Loss, TAux Aux)> loss, params object[] targets)
    {
        ArgumentNullException.ThrowIfNull(loss);
        var function = FuncConvert.FromFunc<(T1, T2, T3, T4), Tuple<Tensor, TAux>>(a => loss(a.Item1, a.Item2, a.Item3, a.Item4).ToTuple());
        var resolved = Targets.Of(targets);
        return (arg1, arg2, arg3, arg4) =>
        {
            var result = NjModule.gradAux(function, resolved, (arg1, arg2, arg3, arg4));
            return (result.Item1, result.Item2, result.Item3, result.Item4);
        };
    }

    /// <summary>Like <see cref="GradAux{TAux}(Func{ValueTuple{Tensor, TAux}}, object[])"/> for a function of 1 tensor argument; lets C# infer the types from a method group.</summary>
    /// <typeparam name="TAux">What the function returns beside the loss.</typeparam>
    /// <param name="loss">The impure function returning the loss and the auxiliary value.</param>
    /// <param name="targets">What to differentiate with respect to: modules, string keys (a key selects itself and every key under it) and <see cref="System.Text.RegularExpressions.Regex"/> patterns.</param>
    /// <returns>A function from the loss's arguments to the loss, the entries differentiated, their gradients and the auxiliary value.</returns>
    public static GradAuxFunc<Tensor, TAux> GradAux<TAux>(Func<Tensor, (Tensor Loss, TAux Aux)> loss, params object[] targets) =>
        GradAux<Tensor, TAux>(loss, targets);

    /// <summary>Like <see cref="GradAux{TAux}(Func{ValueTuple{Tensor, TAux}}, object[])"/> for a function of 2 tensor arguments; lets C# infer the types from a method group.</summary>
    /// <typeparam name="TAux">What the function returns beside the loss.</typeparam>
    /// <param name="loss">The impure function returning the loss and the auxiliary value.</param>
    /// <param name="targets">What to differentiate with respect to: modules, string keys (a key selects itself and every key under it) and <see cref="System.Text.RegularExpressions.Regex"/> patterns.</param>
    /// <returns>A function from the loss's arguments to the loss, the entries differentiated, their gradients and the auxiliary value.</returns>
    public static GradAuxFunc<Tensor, Tensor, TAux> GradAux<TAux>(Func<Tensor, Tensor, (Tensor Loss, TAux Aux)> loss, params object[] targets) =>
        GradAux<Tensor, Tensor, TAux>(loss, targets);

    /// <summary>Like <see cref="GradAux{TAux}(Func{ValueTuple{Tensor, TAux}}, object[])"/> for a function of 3 tensor arguments; lets C# infer the types from a method group.</summary>
    /// <typeparam name="TAux">What the function returns beside the loss.</typeparam>
    /// <param name="loss">The impure function returning the loss and the auxiliary value.</param>
    /// <param name="targets">What to differentiate with respect to: modules, string keys (a key selects itself and every key under it) and <see cref="System.Text.RegularExpressions.Regex"/> patterns.</param>
    /// <returns>A function from the loss's arguments to the loss, the entries differentiated, their gradients and the auxiliary value.</returns>
    public static GradAuxFunc<Tensor, Tensor, Tensor, TAux> GradAux<TAux>(Func<Tensor, Tensor, Tensor, (Tensor Loss, TAux Aux)> loss, params object[] targets) =>
        GradAux<Tensor, Tensor, Tensor, TAux>(loss, targets);

    /// <summary>Like <see cref="GradAux{TAux}(Func{ValueTuple{Tensor, TAux}}, object[])"/> for a function of 4 tensor arguments; lets C# infer the types from a method group.</summary>
    /// <typeparam name="TAux">What the function returns beside the loss.</typeparam>
    /// <param name="loss">The impure function returning the loss and the auxiliary value.</param>
    /// <param name="targets">What to differentiate with respect to: modules, string keys (a key selects itself and every key under it) and <see cref="System.Text.RegularExpressions.Regex"/> patterns.</param>
    /// <returns>A function from the loss's arguments to the loss, the entries differentiated, their gradients and the auxiliary value.</returns>
    public static GradAuxFunc<Tensor, Tensor, Tensor, Tensor, TAux> GradAux<TAux>(Func<Tensor, Tensor, Tensor, Tensor, (Tensor Loss, TAux Aux)> loss, params object[] targets) =>
        GradAux<Tensor, Tensor, Tensor, Tensor, TAux>(loss, targets);

    /// <summary>Differentiates a scalar loss with respect to explicit tensor inputs and, optionally, state entries at once.</summary>
    /// <param name="loss">The impure loss function; it receives the inputs as leaves of the graph, in order.</param>
    /// <param name="inputs">The tensors to differentiate with respect to.</param>
    /// <param name="targets">What to differentiate with respect to: modules, string keys (a key selects itself and every key under it) and <see cref="System.Text.RegularExpressions.Regex"/> patterns.</param>
    /// <returns>The loss, the entries differentiated, their gradients, and the gradients with respect to the inputs, in order.</returns>
    public static (Tensor Loss, State Params, State Grads, IReadOnlyList<Tensor> InputGrads) GradInputs(
        Func<IReadOnlyList<Tensor>, Tensor> loss, IEnumerable<Tensor> inputs, params object[] targets)
    {
        ArgumentNullException.ThrowIfNull(loss);
        ArgumentNullException.ThrowIfNull(inputs);
        var function = FuncConvert.FromFunc<FSharpList<Tensor>, Tuple<Tensor, ValueTuple>>(
            leaves => Tuple.Create(loss(ListModule.ToArray(leaves)), default(ValueTuple)));
        var result = NjModule.gradFull(function, Targets.Of(targets), ListModule.OfSeq(inputs));
        return (result.Loss, result.Params, result.Grads, ListModule.ToArray(result.InputGrads));
    }
}