using static TorchSharp.torch;

namespace Ninjax.CSharp;

/// <summary>ninjax's <c>flatten</c> and <c>unflatten</c> for C#: a structured value (a C# record or class whose
/// constructor takes all its public properties, a tuple, an array, a <c>List&lt;T&gt;</c>, a
/// <c>Dictionary&lt;string, T&gt;</c>, a <see cref="State"/>, nested as deep as needed) as tensors keyed by their place
/// in it, and back. A <see cref="Tree{T}"/> module keeps such a value in the state this way.</summary>
public static class Trees
{
    /// <summary>The tensors of a value keyed by their path inside it (a record's parts by property name, a tuple's,
    /// array's or list's by position, a dictionary's by key: <c>Mu/0</c>, <c>Count</c>), and its structure. Raises
    /// ArgumentException naming a part that is neither a tensor nor such a container (store numbers as 0-d tensors).</summary>
    /// <typeparam name="T">The value's type.</typeparam>
    /// <param name="value">The value to take apart.</param>
    /// <returns>The tensors and the structure.</returns>
    public static (State Entries, TreeDef Structure) Flatten<T>(T value)
    {
        var result = TreeModule.flatten(value);
        return (result.Item1, result.Item2);
    }

    /// <summary>Builds a value of a structure from tensors keyed as <see cref="Flatten{T}(T)"/> keys them. Raises
    /// ArgumentException listing the missing and unexpected keys when the entries do not fit.</summary>
    /// <typeparam name="T">The value's type, as flattened.</typeparam>
    /// <param name="structure">The structure <see cref="Flatten{T}(T)"/> returned.</param>
    /// <param name="entries">The tensors by key.</param>
    /// <returns>The value.</returns>
    public static T Unflatten<T>(TreeDef structure, IReadOnlyDictionary<string, Tensor> entries) =>
        TreeModule.unflatten<T>(structure, entries);
}
