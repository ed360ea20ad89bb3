using System.Reflection;
using PublicApiGenerator;
using Xunit;

namespace Ninjax.CSharp.Tests;

/// <summary>The public APIs of both libraries, compared with the approved snapshots in <c>api/</c>, so that every
/// API change shows up in review. After an intended change, re-approve with <c>dotnet fsi build.fsx -t ApproveApi</c>
/// (or <c>NINJAX_APPROVE_API=1 dotnet test tests/Ninjax.CSharp.Tests -c Release --filter PublicApiTests</c>) and commit
/// the changed <c>.approved.txt</c> files.</summary>
public class PublicApiTests
{
    /// <summary>The environment variable that makes these tests write the snapshots instead of checking them.</summary>
    public const string ApproveVariable = "NINJAX_APPROVE_API";

    /// <summary>The folder of the approved snapshots in the source tree.</summary>
    private static string SnapshotFolder()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Ninjax.sln")))
                return Path.Combine(dir.FullName, "tests", "Ninjax.CSharp.Tests", "api");
        throw new InvalidOperationException($"No Ninjax.sln above {AppContext.BaseDirectory}: run the tests from the repository.");
    }

    /// <summary>The public API of an assembly as text: one declaration per line, without the F# compiler's
    /// bookkeeping attributes, with Unix line ends.</summary>
    public static string PublicApiOf(Assembly assembly) =>
        assembly.GeneratePublicApi(new ApiGeneratorOptions
        {
            ExcludeAttributes =
            [
                "Microsoft.FSharp.Core.CompilationMappingAttribute",
                "Microsoft.FSharp.Core.CompilationArgumentCountsAttribute",
                "Microsoft.FSharp.Core.CompilationSourceNameAttribute",
                "Microsoft.FSharp.Core.FSharpInterfaceDataVersionAttribute",
                "System.Diagnostics.DebuggerDisplayAttribute",
                "System.Diagnostics.DebuggerNonUserCodeAttribute",
                "System.Runtime.Versioning.TargetFrameworkAttribute",
                "System.Reflection.AssemblyMetadataAttribute",
                "System.SerializableAttribute",
                "System.Diagnostics.CodeAnalysis.DynamicDependencyAttribute",
                "System.Diagnostics.DebuggerTypeProxyAttribute",
                "System.Diagnostics.DebuggerBrowsableAttribute",
            ],
        }).Replace("\r\n", "\n");

    /// <summary>Checks (or, with <see cref="ApproveVariable"/> set to 1, writes) the snapshot of one assembly.</summary>
    private static void Verify(Assembly assembly)
    {
        var name = assembly.GetName().Name!;
        var folder = SnapshotFolder();
        var approvedPath = Path.Combine(folder, $"{name}.approved.txt");
        var receivedPath = Path.Combine(folder, $"{name}.received.txt");
        var api = PublicApiOf(assembly);
        if (Environment.GetEnvironmentVariable(ApproveVariable) == "1")
        {
            Directory.CreateDirectory(folder);
            File.WriteAllText(approvedPath, api);
            File.Delete(receivedPath);
            return;
        }
        var approved = File.Exists(approvedPath) ? File.ReadAllText(approvedPath).Replace("\r\n", "\n") : "";
        if (approved == api)
        {
            File.Delete(receivedPath);
            return;
        }
        Directory.CreateDirectory(folder);
        File.WriteAllText(receivedPath, api);
        var before = approved.Split('\n');
        var after = api.Split('\n');
        var removed = before.Except(after).Take(15).Select(l => "  - " + l.Trim());
        var added = after.Except(before).Take(15).Select(l => "  + " + l.Trim());
        Assert.Fail(
            $"The public API of {name} differs from {approvedPath}.\n" +
            string.Join("\n", removed.Concat(added)) +
            $"\nThe whole new API is in {receivedPath}. If the change is intended, re-approve with " +
            "`dotnet fsi build.fsx -t ApproveApi` and commit the .approved.txt files.");
    }

    [Fact]
    public void The_public_API_of_Ninjax_Fs_matches_its_approved_snapshot() => Verify(typeof(State).Assembly);

    [Fact]
    public void The_public_API_of_Ninjax_CSharp_matches_its_approved_snapshot() => Verify(typeof(Nj).Assembly);

    [Fact]
    public void The_snapshot_sees_an_API_change()
    {
        // The generator must put every public member in the text: a method added or renamed changes it.
        var api = PublicApiOf(typeof(State).Assembly);
        Assert.Contains("public sealed class State", api);
        Assert.Contains("public static TorchSharp.torch.Tensor MaxPool2d(int size, TorchSharp.torch.Tensor x)", api);
        Assert.DoesNotContain("Naming", api); // internal modules stay out
    }
}
