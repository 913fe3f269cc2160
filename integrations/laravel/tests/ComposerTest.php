<?php

namespace Tidings\Laravel\Tests;

use PHPUnit\Framework\TestCase as Base;

/** composer.json declares what the code uses, for every Laravel from 8.83 to 12. */
class ComposerTest extends Base
{
    public function testEveryIlluminateComponentTheCodeUsesIsDeclaredForLaravel8To12(): void
    {
        $composer = json_decode(file_get_contents(__DIR__ . '/../composer.json'), true);
        $used = ['routing' => true, 'auth' => true]; // the router and the auth guard, by name
        $files = new \RecursiveIteratorIterator(new \RecursiveDirectoryIterator(__DIR__ . '/../src'));
        foreach ($files as $file) {
            if ($file->isFile()) {
                preg_match_all('/^use Illuminate\\\\(\w+)\\\\/m', file_get_contents($file->getPathname()), $matches);
                foreach ($matches[1] as $component) {
                    $used[strtolower($component)] = true;
                }
            }
        }
        foreach (array_keys($used) as $component) {
            $constraint = $composer['require']["illuminate/{$component}"] ?? null;
            $this->assertNotNull($constraint, "illuminate/{$component} is used but not required");
            foreach (['8.83', '9', '10', '11', '12'] as $major) {
                $admits = false;
                foreach (explode('|', $constraint) as $alternative) {
                    $floor = ltrim(trim($alternative), '^');
                    $admits = $admits || explode('.', $floor)[0] === explode('.', $major)[0];
                }
                $this->assertTrue($admits, "illuminate/{$component} {$constraint} shuts out Laravel {$major}");
            }
        }
    }
}
